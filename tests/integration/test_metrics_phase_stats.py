"""`phase_stats = True` in a real headless Locust run against `loadkit sink`.

Locust then counts phase entries (SMTP-phase rows) beside the messages:
loadkit's count of messages must still agree with Locust's messages (no
count_mismatch event), and the report lists the phases in protocol order.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from loadkit.phases import PHASES, phase_position
from tests.integration.peers import loadkit_sink
from tests.integration.test_metrics_locust_headless import only_folder, read_intervals
from tests.unit.test_report import read_tables

LOCUSTFILE = Path(__file__).with_name("phase_stats_locustfile.py")
PROTOCOL_ORDER = list(PHASES)


def test_phase_rows_raise_no_count_mismatch_and_sort_in_protocol_order(tmp_path):
    with loadkit_sink(tmp_path) as (url, read_stats):
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "-H", url, "--headless", "-u", "4", "-r", "4",
             "-t", "3s", "--only-summary", "--results", str(tmp_path / "results"), "--check", "fail_ratio==0"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        sink = read_stats()
    assert result.returncode == 0, result.stderr[-3000:]
    folder = only_folder(tmp_path / "results")
    with open(folder / "locust_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    phase_rows = [row for row in rows if row["Type"] == "SMTP-phase"]
    assert {row["Name"] for row in phase_rows} >= {"envelope", "end-of-data"}  # Locust did count phases (pipelined: one envelope)
    messages = sum(int(row["Request Count"]) for row in rows if row["Type"] == "SMTP")
    recorded = sum(s["ok"] + s["failed"] for i in read_intervals(folder) for s in i["series"] if s["kind"] == "request")
    assert recorded == messages == sink["messages"] > 0

    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [e for e in events if e["kind"] == "count_mismatch"] == []

    report = subprocess.run([sys.executable, "-m", "loadkit", "report", str(folder), "-o", str(tmp_path / "r.html")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert report.returncode == 0, report.stderr
    phases = [row["Phase"] for row in read_tables((tmp_path / "r.html").read_text(encoding="utf-8"))["phases"]]
    assert phases == [name for name in PROTOCOL_ORDER if name in phases] and len(phases) >= 6, phases
    assert phases == sorted(phases, key=phase_position)
