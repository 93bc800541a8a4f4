"""Distributed runs: msgs/s with one worker and with two, and the master's CPU per worker report.

    python bench/distributed_bench.py [--seconds N] [--users N] [--report-workers N] [--json PATH]

Everything runs on this machine, on 127.0.0.1, against `loadkit sink` (a
fresh one per run, same settings, so its count is the run's):

throughput    `locust --master` + 1 `locust --worker`, then the same with 2
              worker processes, --users each time (split between the
              workers), --seconds long; msgs/s = the master's merged count /
              the run's duration (from run.json). The sink's count is checked
              against the master's.
master cost   `locust --master` + --report-workers (8) worker processes with
              one user each; the master's CPU time (user + system, from
              /proc) over the run, divided by the worker reports it received
              (each worker reports every 3 s, plus one at stop and one at quit).
              It includes Locust's own stats merge as well as loadkit's
              histograms: it is what one more worker costs the master.

Exit status: 0 measured, 2 a failed or miscounted run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = str(ROOT / "locustfiles" / "smtp.py")
WORKER_REPORT_INTERVAL = 3.0  # locust.runners.WORKER_REPORT_INTERVAL
TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class Sink:
    """`loadkit sink` on a free loopback port; `stop()` returns its counters (--stats-json)."""

    def __init__(self, stats: Path):
        self.stats = stats
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "sink", "--stats-json", str(self.stats), "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.process.stdout.readline()
        if "listening on" not in line:
            raise BenchError(f"loadkit sink did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[-1].strip()

    def stop(self) -> dict:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        return json.loads(self.stats.read_text()) if self.stats.exists() else {}


def distributed_run(sink_url: str, workers: int, users: int, seconds: int, results: Path, watch_master=False):
    port = _free_port()
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "-H", sink_url, "--headless", "-u", str(users),
         "-r", str(users), "-t", f"{seconds}s", "--master", "--expect-workers", str(workers),
         "--expect-workers-max-wait", "60", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "--only-summary", "--results", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    processes = [master] + [
        subprocess.Popen([sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--worker", "--master-host",
                          "127.0.0.1", "--master-port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    cpu_before = cpu_after = None
    try:
        if watch_master:
            # CPU from the run's start (all workers connected) to the master's last moment.
            _wait_for_start(results)
            cpu_before = _cpu_seconds(master.pid)
            while master.poll() is None:
                try:
                    cpu_after = _cpu_seconds(master.pid)
                except (FileNotFoundError, ProcessLookupError):
                    break
                time.sleep(0.1)
        _out, err = master.communicate(timeout=seconds + 120)
    finally:
        for process in processes:
            if process.poll() is None:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
    if master.returncode != 0:
        raise BenchError(f"master with {workers} workers exited {master.returncode}: {err[-500:]}")
    folder = max(results.iterdir(), key=lambda path: path.stat().st_mtime)
    run = json.loads((folder / "run.json").read_text())
    with open(folder / "locust_stats.csv", newline="") as handle:
        locust_count = int(next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")["Request Count"])
    if not (run["recorded_requests"] == locust_count == run["requests"] and run.get("workers") == workers):
        raise BenchError(f"{workers} workers: merged {run['recorded_requests']}, Locust {locust_count}, "
                         f"workers {run.get('workers')}")
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return run, cpu


def _wait_for_start(results: Path, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for events in results.glob("*/events.jsonl"):
            for line in events.read_text().splitlines():
                if '"run_started"' in line:
                    return json.loads(line)["time"]
        time.sleep(0.05)
    raise BenchError("the master never started the run")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each run (default 10)")
    parser.add_argument("--users", type=int, default=10, help="users of the throughput runs (default 10)")
    parser.add_argument("--report-workers", type=int, default=8, help="workers of the master-cost run (default 8)")
    parser.add_argument("--json", metavar="PATH", help="write the figures there too")
    args = parser.parse_args(argv)
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="loadkit-distributed-bench-") as scratch:
        scratch = Path(scratch)
        try:
            for workers in (1, 2):
                sink = Sink(scratch / f"sink{workers}.json")
                try:
                    run, _ = distributed_run(sink.url, workers, args.users, args.seconds, scratch / f"w{workers}")
                finally:
                    received = sink.stop().get("messages")
                if received != run["requests"]:
                    raise BenchError(f"{workers} workers: the master counted {run['requests']}, the sink {received}")
                seconds = run["stopped_at"] - run["started_at"]
                shares = sorted(run["worker_shares"].values())
                figures[f"workers_{workers}"] = {"messages": run["requests"], "seconds": round(seconds, 2),
                                                 "msgs_per_s": round(run["requests"] / seconds), "shares": shares}
                print(f"{workers} worker(s): {run['requests']} msgs in {seconds:.1f}s = "
                      f"{run['requests'] / seconds:,.0f} msgs/s  (shares {shares})", flush=True)
            n = args.report_workers
            sink = Sink(scratch / "sink-cost.json")
            try:
                run, cpu = distributed_run(sink.url, n, n, args.seconds, scratch / f"cost{n}", watch_master=True)
            finally:
                sink.stop()
            seconds = run["stopped_at"] - run["started_at"]
            reports = n * (seconds / WORKER_REPORT_INTERVAL + 2)
            figures["master_cost"] = {
                "workers": n, "seconds": round(seconds, 2), "master_cpu_s": round(cpu, 3),
                "reports": round(reports), "cpu_ms_per_report": round(cpu / reports * 1000, 2),
                "messages": run["requests"],
            }
            print(f"master with {n} workers: {cpu:.2f} s CPU over {seconds:.1f}s, ~{reports:.0f} worker reports "
                  f"= {cpu / reports * 1000:.1f} ms CPU per report ({run['requests']} msgs merged)", flush=True)
        except BenchError as error:
            print(f"distributed_bench: {error}", file=sys.stderr)
            return 2
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
