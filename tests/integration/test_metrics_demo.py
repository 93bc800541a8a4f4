"""`loadkit demo` writes the same results folder as the locust command, counted against its sink."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path


def test_demo_folder_has_the_metrics_files(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", "--duration", "2", "--users", "4", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    folder = Path(re.search(r"-> (\S+)", result.stdout).group(1))
    assert {"run.json", "metrics.jsonl", "events.jsonl", "errors.csv", "locust_stats.csv",
            "locust_stats_history.csv"} <= {p.name for p in folder.iterdir()}
    run = json.loads((folder / "run.json").read_text())
    recorded = sum(series["ok"] + series["failed"]
                   for line in (folder / "metrics.jsonl").read_text().splitlines()
                   for series in json.loads(line)["series"] if series["kind"] == "request")
    with open(folder / "locust_stats.csv", newline="") as handle:
        locust_count = int(next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")["Request Count"])
    assert recorded == locust_count == run["requests"] == run["sink"]["messages"] > 0
    kinds = [json.loads(line)["kind"] for line in (folder / "events.jsonl").read_text().splitlines()]
    assert kinds == ["run_started", "run_stopped"]
