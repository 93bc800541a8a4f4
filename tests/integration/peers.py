"""Real peers started by the tests: Postfix's smtp-sink, loadkit's own sink CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from tests.conftest import find_peer, free_port, wait_for_port

_COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


class PostfixSink:
    """Postfix's smtp-sink with running counters (-c); `counts()` after `stop()`."""

    def __init__(self, lmtp: bool = False):
        self.port = free_port()
        command = [find_peer("smtp-sink"), "-c"]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        if lmtp:
            command.append("-L")
        command += [f"127.0.0.1:{self.port}", "256"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.output = b""
        self._reader = threading.Thread(target=self._read_counters, daemon=True)
        self._reader.start()
        wait_for_port("127.0.0.1", self.port)

    def _read_counters(self) -> None:
        while chunk := self.process.stdout.read1(4096):
            self.output += chunk

    def _counts(self) -> dict | None:
        counters = _COUNTERS.findall(self.output)
        if not counters:
            return None
        sessions, quits, messages = (int(n) for n in counters[-1])
        # wait_for_port's probe connection is a session too
        return {"sessions": sessions - 1, "quits": quits, "messages": messages}

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, sessions: int | None = None, timeout: float = 10.0) -> dict:
        """Stop and return the last counters; with `sessions`, first give smtp-sink
        time to count that many ended sessions (it counts a session when it has
        closed it, which can be after our client saw the 221)."""
        deadline = time.monotonic() + timeout
        while sessions is not None and time.monotonic() < deadline:
            counts = self._counts()
            if counts and counts["sessions"] >= sessions:
                break
            time.sleep(0.02)
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        self._reader.join(timeout)
        counts = self._counts()
        assert counts, f"smtp-sink printed no counters: {self.output[-200:]!r}"
        return counts


@contextmanager
def postfix_sink(lmtp: bool = False):
    sink = PostfixSink(lmtp)
    try:
        yield sink
    finally:
        if sink.process.poll() is None:
            sink.process.kill()
            sink.process.wait(5)


@contextmanager
def loadkit_sink(tmp_path, *options: str, listen: str = "127.0.0.1:0"):
    """`loadkit sink` as a user runs it; yields (url, read_stats) with stats read after SIGTERM."""
    stats_path = tmp_path / "sink-stats.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "sink", "--stats-json", str(stats_path), *options, listen],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "listening on" in line, f"loadkit sink did not start: {line!r} {process.stderr.read()}"
        url = line.rsplit(" ", 1)[-1].strip()

        def read_stats() -> dict:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
            return json.loads(stats_path.read_text())

        yield url, read_stats
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


@contextmanager
def master_and_workers(
    locustfile: str, host: str, master_options: list[str], workers: int = 2,
    environment: dict | None = None, worker_environment: dict | None = None,
):
    """A headless `locust --master` and `workers` `locust --worker` processes on loopback.

    Yields (master, worker processes); every process is gone afterwards.
    """
    port = free_port()
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", locustfile, "-H", host, "--headless", "--master",
         "--expect-workers", str(workers), "--expect-workers-max-wait", "30",
         "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--only-summary", *master_options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )
    worker_processes = [
        subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", locustfile, "--worker", "--master-host", "127.0.0.1",
             "--master-port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=worker_environment or environment,
        )
        for _ in range(workers)
    ]
    try:
        yield master, worker_processes
    finally:
        for process in (master, *worker_processes):
            if process.poll() is None:
                process.kill()
                process.wait(5)


def run_master_and_workers(
    locustfile: str, host: str, master_options: list[str], workers: int = 2,
    environment: dict | None = None, timeout: float = 90,
) -> subprocess.CompletedProcess:
    """Run a master and its workers to the end; returns the master's exit status and output."""
    with master_and_workers(locustfile, host, master_options, workers, environment) as (master, worker_processes):
        out, err = master.communicate(timeout=timeout)
        for worker in worker_processes:
            worker.wait(30)
    return subprocess.CompletedProcess(master.args, master.returncode, out, err)
