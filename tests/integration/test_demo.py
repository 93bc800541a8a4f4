"""`loadkit demo` as the README runs it, shortened: sink, load, results folder, report."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys


def test_demo_writes_results_and_report(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", "--duration", "3", "--users", "5", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = re.search(r"report written to (\S+)", result.stdout).group(1)
    folder = tmp_path / report.split("/")[-2]
    assert (folder / "report.html").is_file()
    run = json.loads((folder / "run.json").read_text())
    with open(folder / "locust_stats.csv", newline="") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) == run["requests"] == run["sink"]["messages"] > 0
    html = (folder / "report.html").read_text()
    assert html.count('<figure class="chart"') >= 2  # throughput and latency charts


def test_demo_refuses_an_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", "--out", str(blocker / "sub")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot create results folder" in result.stderr
