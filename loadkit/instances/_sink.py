"""``loadkit sink`` in a process of its own, where a Postfix instance relays.

It must outlive the ``loadkit target postfix up`` that started it, so it
runs in a session of its own with its output in a log file (no pipe to a
parent that is about to exit); the log's first line says where it listens.
Its counters are written to ``stats.json`` when it stops; each traced
message is a line of ``traces.log`` as soon as it arrives.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import loadkit
from loadkit.instances._system import InstanceError, is_alive, stop_pid, tail, wait_until
from loadkit.results import read_sink_stats, sink_files

LISTENING = "loadkit sink: listening on "
SINK_START_TIMEOUT = 20.0  # seconds: a cold Python start plus gevent's import


class SinkProcess:
    """A detached ``loadkit sink --stats-json FOLDER/stats.json 127.0.0.1:0``."""

    def __init__(self, folder: Path, lmtp: bool = False, hostname: str = "loadkit-sink",
                 dkim_verify: Path | None = None):
        self.folder = Path(folder)
        self.dkim_verify = dkim_verify
        self.lmtp = lmtp
        self.hostname = hostname
        self.pid: int | None = None
        self.url: str | None = None
        self._process: subprocess.Popen | None = None  # only in the process that started it

    @property
    def stats_path(self) -> Path:
        return sink_files(self.folder)[0]

    @property
    def trace_log_path(self) -> Path:
        return sink_files(self.folder)[1]

    @property
    def log_path(self) -> Path:
        return sink_files(self.folder)[2]

    @property
    def port(self) -> int | None:
        return int(self.url.rsplit(":", 1)[1]) if self.url else None

    def start(self) -> str:
        """Start the sink on a free loopback port; its URL."""
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "loadkit", "sink", "-h", self.hostname, "--stats-json", str(self.stats_path),
                   "--trace-log", str(self.trace_log_path)]
        if self.lmtp:
            command.append("-L")
        if self.dkim_verify is not None:
            command += ["--dkim-verify", str(self.dkim_verify)]
        command.append("127.0.0.1:0")
        package_root = str(Path(loadkit.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=self.folder,
            )
        self.pid = self._process.pid
        if not wait_until(self._read_url, SINK_START_TIMEOUT):
            said = " ".join(tail(self.log_path, 1)) or "nothing"
            self.stop(5)
            raise InstanceError(f"loadkit sink did not start within {SINK_START_TIMEOUT:.0f}s: {said}")
        return self.url

    def _read_url(self) -> bool:
        for line in tail(self.log_path, 5):
            if line.startswith(LISTENING):
                self.url = line[len(LISTENING):].strip()
                return True
        if self._process is not None and self._process.poll() is not None:
            raise InstanceError(f"loadkit sink exited: {' '.join(tail(self.log_path, 1)) or 'no output'}")
        return False

    def is_running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return is_alive(self.pid, expect=str(self.stats_path))

    def stop(self, timeout: float) -> None:
        """SIGTERM (the sink writes its stats and exits), SIGKILL after `timeout`."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(5)
            return
        stop_pid(self.pid, timeout, expect=str(self.stats_path))

    def stats(self) -> dict | None:
        """The sink's counters (sessions, messages, recipients, bytes, ...), once it has stopped."""
        return read_sink_stats(self.stats_path)

    def describe(self) -> dict:
        return {
            "url": self.url, "pid": self.pid, "protocol": "lmtp" if self.lmtp else "smtp",
            "stats_json": str(self.stats_path), "trace_log": str(self.trace_log_path), "log": str(self.log_path),
        }

    @classmethod
    def restore(cls, info: dict) -> "SinkProcess":
        sink = cls(Path(info["stats_json"]).parent, lmtp=info.get("protocol") == "lmtp")
        sink.pid, sink.url = info.get("pid"), info.get("url")
        return sink
