"""A distributed run on loopback: `locust --master` and two `locust --worker` against `loadkit sink`.

The master's merged histograms must count what Locust counted and what the
sink received, and say which worker did how much.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.integration.peers import loadkit_sink, run_master_and_workers

LOCUSTFILE = str(Path(__file__).resolve().parents[2] / "locustfiles" / "smtp.py")


def test_master_merges_two_workers_exactly(tmp_path):
    results = tmp_path / "results"
    with loadkit_sink(tmp_path) as (url, read_stats):
        master = run_master_and_workers(
            LOCUSTFILE, url,
            ["-u", "6", "-r", "6", "-t", "4s", "--results", str(results),
             "--check", "no_worker_lost", "--check", "send:fail_ratio==0"],
        )
        sink = read_stats()
    out, err = master.stdout, master.stderr
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
    print(f"counted: locust {locust_count} merged {merged} sink {sink['messages']}")
    assert merged == locust_count == sink["messages"] > 0
    assert {"connect", "envelope", "end-of-data"} <= phases

    run = json.loads((folder / "run.json").read_text())
    assert run["workers"] == 2 and len(run["worker_shares"]) == 2
    assert sum(run["worker_shares"].values()) == merged and min(run["worker_shares"].values()) > 0
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    joined = {e["worker"] for e in events if e["kind"] == "worker_joined"}
    assert joined == set(run["worker_shares"])
    assert not [e for e in events if e["kind"] in ("worker_lost", "worker_missing", "count_mismatch")]
    assert "2 of 2 passed" in out
