"""Every probe once a second in one greenlet, rows appended to ``probes.jsonl``.

Samples are taken just after each whole second of the clock, like the
metrics' intervals, so probe rows and client intervals line up on the
report's time axis. A probe that fails says so once (a log line, an
``probe_failed`` event when a results run is open, and a row with
``error``), then keeps trying quietly: the run goes on.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import gevent

from loadkit.results import PROBES_FILE, open_probes, probes_path, write_probe_row  # noqa: F401 - re-exported by loadkit.probes

INTERVAL = 1.0
OFFSET = 0.05  # seconds after the whole second: clear of the metrics' own tick

log = logging.getLogger(__name__)


class ProbeSampler:
    """Samples `probes` every `interval` seconds into `folder`/probes.jsonl until `stop()`."""

    def __init__(self, probes: list, folder: str | Path, on_failure=None, interval: float = INTERVAL):
        self.probes = list(probes)
        self.path = probes_path(Path(folder))
        self.interval = interval
        self.on_failure = on_failure  # (probe name, message) -> None, once per probe
        self.rows = 0
        self.failed: dict[str, str] = {}
        self._out = None
        self._greenlet = None

    def start(self) -> "ProbeSampler":
        self._out = open_probes(self.path.parent)
        self._greenlet = gevent.spawn(self._loop)
        return self

    def _loop(self) -> None:
        while True:
            now = time.time()
            gevent.sleep(max(0.0, math.floor(now / self.interval) * self.interval + self.interval + OFFSET - now))
            self.sample_once()

    def sample_once(self) -> None:
        moment = round(time.time(), 3)
        for probe in self.probes:
            try:
                row = probe.sample()
            except Exception as error:  # noqa: BLE001 - any failure of a probe must not end the run
                self._failure(probe.name, moment, str(error) or type(error).__name__)
                continue
            self._write({"time": moment, "probe": probe.name, **row})
        self._out.flush()

    def _failure(self, name: str, moment: float, message: str) -> None:
        if name in self.failed:
            return
        self.failed[name] = message
        log.warning("loadkit probe %s: %s (the run goes on; not said again)", name, message)
        self._write({"time": moment, "probe": name, "error": message})
        if self.on_failure is not None:
            self.on_failure(name, message)

    def _write(self, row: dict) -> None:
        write_probe_row(self._out, row)
        self.rows += 1

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        if self._out is not None:
            self._out.close()
            self._out = None
