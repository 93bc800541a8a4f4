"""A distributed run on loopback: `locust --master` and two `locust --worker` against `loadkit sink`.

The master's merged histograms must count what Locust counted and what the
sink received, and say which worker did how much.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port
from tests.integration.peers import loadkit_sink

LOCUSTFILE = str(Path(__file__).resolve().parents[2] / "locustfiles" / "smtp.py")


def test_master_merges_two_workers_exactly(tmp_path):
    port = free_port()
    results = tmp_path / "results"
    with loadkit_sink(tmp_path) as (url, read_stats):
        master = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "-H", url, "--headless", "-u", "6", "-r", "6",
             "-t", "4s", "--master", "--expect-workers", "2", "--expect-workers-max-wait", "30",
             "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--only-summary",
             "--results", str(results), "--check", "no_worker_lost", "--check", "send:fail_ratio==0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--worker", "--master-host", "127.0.0.1",
                 "--master-port", str(port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            for _ in range(2)
        ]
        try:
            out, err = master.communicate(timeout=90)
            for worker in workers:
                worker.wait(30)
        finally:
            for process in (master, *workers):
                if process.poll() is None:
                    process.kill()
                    process.wait(5)
        sink = read_stats()
    assert master.returncode == 0, err[-2000:]

    (folder,) = results.iterdir()
    with open(folder / "locust_stats.csv", newline="") as handle:
        locust_count = int(next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")["Request Count"])
    merged = 0
    phases = set()
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        for series in json.loads(line)["series"]:
            if series["kind"] == "request":
                merged += series["ok"] + series["failed"]
            else:
                phases.add(series["name"])
    assert merged == locust_count == sink["messages"] > 0
    assert {"connect", "mail", "rcpt", "end-of-data"} <= phases

    run = json.loads((folder / "run.json").read_text())
    assert run["workers"] == 2 and len(run["worker_shares"]) == 2
    assert sum(run["worker_shares"].values()) == merged and min(run["worker_shares"].values()) > 0
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    joined = {e["worker"] for e in events if e["kind"] == "worker_joined"}
    assert joined == set(run["worker_shares"])
    assert not [e for e in events if e["kind"] in ("worker_lost", "worker_missing", "count_mismatch")]
    assert "2 of 2 passed" in out
