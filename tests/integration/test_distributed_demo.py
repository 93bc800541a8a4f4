"""`loadkit demo --workers 2`: a Locust master and two worker processes against the demo's sink."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_with_two_workers_writes_merged_results_and_report(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", "--workers", "2", "--duration", "3", "--users", "4",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-1000:] + result.stderr[-2000:]
    report = re.search(r"report written to (\S+)", result.stdout).group(1)
    folder = tmp_path / report.split("/")[-2]
    assert (folder / "report.html").is_file()
    run = json.loads((folder / "run.json").read_text())
    with open(folder / "locust_stats.csv", newline="") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) == run["requests"] == run["sink"]["messages"] > 0
    assert run["workers"] == 2 and sum(run["worker_shares"].values()) == run["requests"]
    assert min(run["worker_shares"].values()) > 0
    assert run["command"] == "loadkit demo --workers 2"
    events = [json.loads(line)["kind"] for line in (folder / "events.jsonl").read_text().splitlines()]
    assert events.count("worker_joined") == 2 and "worker_lost" not in events


def test_demo_refuses_negative_workers(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", "--workers", "-1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "loadkit demo: error: --workers must be 0 or more"
