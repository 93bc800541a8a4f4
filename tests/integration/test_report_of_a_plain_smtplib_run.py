"""The report of a plain Locust run: a user on Python's smtplib, no loadkit code in the run.

Locust writes its --json-file at shutdown (complete) and its --csv once a
second (the last second can be missing: a Locust limitation loadkit's own
runs work around). `loadkit report` must show what each file says.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.peers import loadkit_sink

pytestmark = pytest.mark.slow

SMTPLIB_LOCUSTFILE = Path(__file__).resolve().parents[2] / "bench" / "smtplib_locustfile.py"
FRESH_CLOCK = Path(__file__).with_name("fresh_clock_locustfile.py")  # -t 3s counted from the start, not before it


def report_of(target: Path, output: Path) -> str:
    built = subprocess.run(
        [sys.executable, "-m", "loadkit", "report", str(target), "-o", str(output)],
        capture_output=True, text=True, timeout=120,
    )
    assert built.returncode == 0, built.stderr
    return output.read_text().replace(",", "")


def test_report_of_a_plain_locust_smtplib_run(tmp_path):
    # bounded by time (3 s), not by count: Locust's CSV then has rows whatever the machine's speed;
    # --stop-timeout lets the message in flight finish, so Locust's JSON counts what the sink got
    environment = dict(os.environ, BENCH_MESSAGES="1000000000", BENCH_REUSE="1", BENCH_LENGTH="1000")
    with loadkit_sink(tmp_path) as (url, read_stats):
        run = subprocess.run(
            [sys.executable, "-m", "locust", "-f", f"{SMTPLIB_LOCUSTFILE},{FRESH_CLOCK}", "-H", url, "--headless",
             "-u", "5", "-r", "5", "-t", "3s", "--stop-timeout", "10", "--only-summary", "--csv", str(tmp_path / "plain"),
             "--json-file", str(tmp_path / "plain")],
            capture_output=True, text=True, timeout=120, env=environment, cwd=tmp_path,
        )
        stats = read_stats()
    assert run.returncode == 0, run.stderr[-2000:]
    sent = stats["messages"]
    assert sent > 0

    html = report_of(tmp_path / "plain.json", tmp_path / "from-json.html")
    assert f">{sent}<" in html  # the count, in a table cell

    with open(tmp_path / "plain_stats.csv", newline="") as handle:
        csv_count = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")["Request Count"]
    assert 0 < int(csv_count) <= sent
    html = report_of(tmp_path / "plain", tmp_path / "from-csv.html")
    assert f">{csv_count}<" in html
