"""Processes the tests start: Postfix's smtp-sink, loadkit's own sink CLI, Locust masters and workers.

Every one is a `WatchedProcess`: its output is read as it comes and kept,
and when the test is done it must have exited with the status the test
expects and printed no traceback, or the test fails with its output. A
helper that ignored a peer's exit status or dropped its stderr would let
a crash pass as a green test.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import find_peer, listening_port

_COUNTERS = re.compile(r"sess=(\d+) quit=(\d+) mesg=(\d+)")
OUTPUT_SHOWN = 3000  # characters of a failed process's output in the failure message
# Only a guard against a worker that never comes: on a busy machine a worker took over 30 s to start.
WORKERS_MAX_WAIT = 120


class WatchedProcess(subprocess.Popen):
    """A process a test helper started, watched so that its failures cannot hide.

    stdout and stderr are read as they come (a full pipe never stalls it) and
    kept. `finish()` sends `stop_signal` if it is still running, waits, and
    asserts its exit status is `expected_status` and its output holds no
    "Traceback". A test that kills it on purpose (SIGKILL) expects -SIGKILL.
    """

    def __init__(self, name: str, command: list[str], *, expected_status: int = 0,
                 stop_signal: int | None = None, first_line: bool = False, env: dict | None = None):
        super().__init__(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.name = name
        self.expected_status = expected_status
        self.stop_signal = stop_signal
        # read before the readers start: a server's "listening on" line
        self.first_line = self.stdout.readline().decode(errors="replace") if first_line else ""
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(stream, chunks), daemon=True)
            for stream, chunks in ((self.stdout, self._out), (self.stderr, self._err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream, chunks: list[bytes]) -> None:
        with stream:
            while chunk := stream.read1(65536):
                chunks.append(chunk)

    def send_signal(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            self.expected_status = -signal.SIGKILL
        super().send_signal(sig)

    def stdout_text(self) -> str:
        """What it wrote to stdout so far (all of it once it has exited)."""
        self._join_if_exited()
        return self.first_line + b"".join(self._out).decode(errors="replace")

    def stderr_text(self) -> str:
        self._join_if_exited()
        return b"".join(self._err).decode(errors="replace")

    def communicate(self, input=None, timeout=None) -> tuple[str, str]:
        """Wait for the exit (TimeoutExpired as Popen's) and return (stdout, stderr) as text."""
        self.wait(timeout)
        return self.stdout_text(), self.stderr_text()

    def _join_if_exited(self) -> None:
        if self.poll() is not None:
            for reader in self._readers:
                reader.join(10)  # a child that inherited the pipe could hold it open

    def finish(self, timeout: float = 30.0) -> None:
        """Stop it with `stop_signal` if it runs, then assert its exit status and that it printed no traceback."""
        if self.stop_signal is not None and self.poll() is None:
            super().send_signal(self.stop_signal)
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop_now()
            raise AssertionError(f"{self.name} was still running {timeout}s after the test:\n{self._shown()}") from None
        problems = []
        if self.returncode != self.expected_status:
            problems.append(f"exited with {self.returncode}, expected {self.expected_status}")
        if "Traceback" in self.stdout_text() + self.stderr_text():
            problems.append("printed a traceback")
        assert not problems, f"{self.name} {' and '.join(problems)}:\n{self._shown()}"

    def stop_now(self) -> None:
        if self.poll() is None:
            super().send_signal(signal.SIGKILL)
        try:
            self.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def _shown(self) -> str:
        out, err = self.stdout_text(), self.stderr_text()
        return f"--- stdout ---\n{out[-OUTPUT_SHOWN:]}\n--- stderr ---\n{err[-OUTPUT_SHOWN:]}"


@contextmanager
def watching(processes: list[WatchedProcess], timeout: float = 30.0):
    """After a block that succeeded, `finish` every process; whatever happened, none is left running."""
    try:
        yield
        for process in processes:
            process.finish(timeout)
    finally:
        for process in processes:
            process.stop_now()


class PostfixSink:
    """Postfix's smtp-sink with running counters (-c); `counts()` after `stop()`.

    smtp-sink binds port 0 but does not say which port it got: the port is
    read from the kernel's socket table (`listening_port`).
    """

    def __init__(self, lmtp: bool = False, options: tuple[str, ...] = ()):
        command = [find_peer("smtp-sink"), "-c", *options]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        if lmtp:
            command.append("-L")
        command += ["127.0.0.1:0", "256"]
        # smtp-sink has no handler for SIGTERM: stopped so, it ends by that signal
        self.process = WatchedProcess("Postfix's smtp-sink", command, expected_status=-signal.SIGTERM,
                                      stop_signal=signal.SIGTERM)
        try:
            self.port = listening_port(self.process)
        except BaseException:
            self.process.stop_now()
            raise

    def _counts(self) -> dict:
        counters = _COUNTERS.findall(self.process.stdout_text())
        if not counters:  # -c prints a line only once a session has ended
            return {"sessions": 0, "quits": 0, "messages": 0}
        sessions, quits, messages = (int(n) for n in counters[-1])
        return {"sessions": sessions, "quits": quits, "messages": messages}

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, sessions: int | None = None, timeout: float = 10.0) -> dict:
        """Stop and return the last counters; with `sessions`, first give smtp-sink
        time to count that many ended sessions (it counts a session when it has
        closed it, which can be after our client saw the 221)."""
        deadline = time.monotonic() + timeout
        while sessions is not None and time.monotonic() < deadline:
            if self._counts()["sessions"] >= sessions:
                break
            time.sleep(0.02)
        self.process.finish(timeout)
        return self._counts()


@contextmanager
def postfix_sink(lmtp: bool = False, options: tuple[str, ...] = ()):
    """Postfix's smtp-sink on 127.0.0.1 (port 0); checked to end as expected after the block."""
    sink = PostfixSink(lmtp, options)
    with watching([sink.process]):
        yield sink


@contextmanager
def loadkit_sink(tmp_path, *options: str, listen: str = "127.0.0.1:0", stop_timeout: float = 10.0):
    """`loadkit sink` as a user runs it; yields (url, read_stats) with stats read after SIGTERM.

    It must exit 0 without a traceback when stopped, whether by read_stats or after the block.
    """
    stats_path = tmp_path / "sink-stats.json"
    process = WatchedProcess(
        "loadkit sink", [sys.executable, "-m", "loadkit", "sink", "--stats-json", str(stats_path), *options, listen],
        stop_signal=signal.SIGTERM, first_line=True,
    )
    with watching([process], stop_timeout):
        line = process.first_line
        if "listening on" not in line:
            process.stop_now()
            raise AssertionError(f"loadkit sink did not start: {line!r} {process.stderr_text()}")
        url = line.rsplit(" ", 1)[-1].strip()

        def read_stats() -> dict:
            process.finish(stop_timeout)
            return json.loads(stats_path.read_text())

        yield url, read_stats


@contextmanager
def master_and_workers(
    locustfile: str, host: str, master_options: list[str], workers: int = 2,
    environment: dict | None = None, worker_environment: dict | None = None, master_status: int = 0,
    bind: str = "127.0.0.1", worker_prefixes: list[list[str]] | None = None,
):
    """A headless `locust --master` on `bind` (port 0, read from the kernel) and its `locust --worker` processes.

    Each worker command may start with a prefix (`ip netns exec NAME`). Yields
    (master, worker processes). After the block the master must have exited
    with `master_status`, each worker with 0 (or -SIGKILL if the test killed
    it), and none may have printed a traceback; every process is gone afterwards.
    """
    prefixes = worker_prefixes if worker_prefixes is not None else [[] for _ in range(workers)]
    master = WatchedProcess(
        "locust --master",
        [sys.executable, "-m", "locust", "-f", locustfile, "-H", host, "--headless", "--master",
         "--expect-workers", str(len(prefixes)), "--expect-workers-max-wait", str(WORKERS_MAX_WAIT),
         "--master-bind-host", bind, "--master-bind-port", "0", "--only-summary", *master_options],
        expected_status=master_status, env=environment,
    )
    processes = [master]
    with watching(processes):
        port = listening_port(master)
        for index, prefix in enumerate(prefixes):
            processes.append(WatchedProcess(
                f"locust --worker {index}",
                [*prefix, sys.executable, "-m", "locust", "-f", locustfile, "--worker", "--master-host", bind,
                 "--master-port", str(port)],
                env=worker_environment or environment,
            ))
        yield master, processes[1:]


def run_master_and_workers(
    locustfile: str, host: str, master_options: list[str], workers: int = 2,
    environment: dict | None = None, timeout: float = 90, master_status: int = 0,
) -> subprocess.CompletedProcess:
    """Run a master and its workers to the end; returns the master's exit status and output."""
    with master_and_workers(locustfile, host, master_options, workers, environment,
                            master_status=master_status) as (master, _workers):
        out, err = master.communicate(timeout=timeout)
        # the workers' exits are awaited after the block (`watching`), which shows the output of one still running
    return subprocess.CompletedProcess(master.args, master.returncode, out, err)


def wait_for_run_start(results: Path, timeout: float = 60.0) -> float:
    """When the run whose results folder is under `results` started (run_started in its events.jsonl, written
    as it happens): a test times what it does to the run from there, not from when it started the process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for events in results.glob("*/events.jsonl"):
            for line in events.read_text().splitlines():
                event = json.loads(line)
                if event["kind"] == "run_started":
                    return event["time"]
        time.sleep(0.05)
    raise TimeoutError(f"no run started under {results} within {timeout}s")


def locust_and_merged_counts(folder: Path) -> tuple[int, int]:
    """(Locust's own request count from its CSV, loadkit's merged count from metrics.jsonl) of a results folder."""
    with open(folder / "locust_stats.csv", newline="") as handle:
        locust_count = int(next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")["Request Count"])
    merged = sum(
        series["ok"] + series["failed"]
        for line in (folder / "metrics.jsonl").read_text().splitlines()
        for series in json.loads(line)["series"]
        if series["kind"] == "request"
    )
    return locust_count, merged


# Loaded beside a test's locustfile (`-f theirs.py,this.py`): on the master only, it writes down each
# worker's report and heartbeat as it arrives, and may give workers more liveness.
_MASTER_LOG_LOCUSTFILE = '''\
"""A test's view of the master: as "<time> <kind> <worker>" lines, each heartbeat, and each report that
carried requests in loadkit's payload (what counts in the worker's share)."""

import time

import locust.runners
from locust import events
from locust.runners import MasterRunner

LOG = {log!r}
LIVENESS = {liveness!r}

if LIVENESS is not None:
    locust.runners.HEARTBEAT_LIVENESS = LIVENESS  # read by the master on every heartbeat


def _write(kind, worker):
    with open(LOG, "a") as handle:
        handle.write(f"{{time.time()}} {{kind}} {{worker}}\\n")


def _report(client_id, data, **_kwargs):
    payload = data.get("loadkit") or {{}}
    requests = sum(series["ok"] + series["failed"] for interval in payload.get("intervals", ())
                   for series in interval["series"] if series["kind"] == "request")
    if requests:
        _write("report", client_id)


@events.init.add_listener
def _watch(environment, runner=None, **_kwargs):
    if isinstance(runner, MasterRunner):
        environment.events.worker_report.add_listener(_report)
        environment.events.heartbeat_sent.add_listener(lambda client_id, **_: _write("heartbeat", client_id))
'''


def master_log_locustfile(folder: Path, heartbeat_liveness: int | None = None) -> tuple[str, Path]:
    """(a locustfile to add to `-f` after the test's own, the file it writes on the master).

    The master writes "<time> report <worker>" when a worker's report reaches it
    with requests in loadkit's payload (a report before the first whole second
    carries none) and "<time> heartbeat <worker>" for each heartbeat, as they happen. With
    `heartbeat_liveness`, the master waits that many silent heartbeats (Locust's
    HEARTBEAT_LIVENESS, 3) before it marks a worker missing.
    """
    log = folder / "master-log.txt"
    locustfile = folder / "master_log_locustfile.py"
    locustfile.write_text(_MASTER_LOG_LOCUSTFILE.format(log=str(log), liveness=heartbeat_liveness))
    return str(locustfile), log


def read_master_log(log: Path) -> list[tuple[float, str, str]]:
    """The (time, kind, worker) lines `master_log_locustfile` wrote so far."""
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(float(at), kind, worker) for at, kind, worker in (line for line in lines if len(line) == 3)]


def wait_for_reports(log: Path, workers: int, timeout: float = 60.0) -> dict[str, float]:
    """Wait until the master has counted requests from `workers` workers; returns each one's first report time.
    A test that does something to a worker's reports waits for this, not for a number of seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first: dict[str, float] = {}
        for at, kind, worker in read_master_log(log):
            if kind == "report":
                first.setdefault(worker, at)
        if len(first) >= workers:
            return first
        time.sleep(0.05)
    raise TimeoutError(f"the master had no requests reported by {workers} workers within {timeout}s")


def heartbeat_gaps(log: Path) -> dict[str, float]:
    """Each worker's longest silence between two heartbeats the master got, in seconds."""
    last: dict[str, float] = {}
    gaps: dict[str, float] = {}
    for at, kind, worker in read_master_log(log):
        if kind == "heartbeat":
            if worker in last:
                gaps[worker] = max(gaps.get(worker, 0.0), at - last[worker])
            last[worker] = at
    return gaps
