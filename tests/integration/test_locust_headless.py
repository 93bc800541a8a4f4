"""The Locust path itself: `locust -f locustfiles/...` headless against `loadkit sink`.

Locust's CSV, written by Locust, must count exactly what the sink received.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.peers import loadkit_sink

LOCUSTFILES = Path(__file__).resolve().parents[2] / "locustfiles"
USERS = 8  # run_locust's -u
MESSAGES_PER_CONNECTION = 10


def assert_connections_reused(sessions: int, messages: int) -> None:
    """Each user opens ceil(its messages / 10) sessions; its last one may be cut short by the run's end."""
    assert math.ceil(messages / MESSAGES_PER_CONNECTION) <= sessions, (sessions, messages)
    assert sessions <= messages // MESSAGES_PER_CONNECTION + USERS, (sessions, messages)


def run_locust(locustfile: str, host: str, csv_prefix: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / locustfile), "-H", host,
        "--headless", "-u", str(USERS), "-r", str(USERS), "-t", "3s", "--csv", str(csv_prefix), "--only-summary",
        "--results", str(csv_prefix.parent / "results"), *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def aggregated(csv_prefix: Path) -> dict:
    with open(f"{csv_prefix}_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    return rows["Aggregated"]


def test_smtp_locustfile_counts_match_the_sink(tmp_path):
    with loadkit_sink(tmp_path) as (url, read_stats):
        result = run_locust("smtp.py", url, tmp_path / "smtp")
        stats = read_stats()
    assert result.returncode == 0, result.stderr[-2000:]
    row = aggregated(tmp_path / "smtp")
    assert int(row["Failure Count"]) == 0
    assert int(row["Request Count"]) == stats["messages"] > 0
    assert stats["recipients"] == stats["messages"]
    assert_connections_reused(stats["sessions"], stats["messages"])
    with open(tmp_path / "smtp_stats.csv", newline="") as handle:
        types = {row["Type"] for row in csv.DictReader(handle) if row["Name"] != "Aggregated"}
    assert types == {"SMTP"}  # phase timings ride in the event context, not as extra entries


def test_lmtp_locustfile_over_a_unix_socket(tmp_path):
    socket_path = tmp_path / "lmtp.sock"
    with loadkit_sink(tmp_path, "-L", listen=f"unix:{socket_path}") as (_url, read_stats):
        result = run_locust("lmtp.py", f"lmtp+unix://{socket_path}", tmp_path / "lmtp")
        stats = read_stats()
    assert result.returncode == 0, result.stderr[-2000:]
    row = aggregated(tmp_path / "lmtp")
    assert int(row["Request Count"]) == stats["messages"] > 0
    assert stats["recipients"] == 2 * stats["messages"]  # two recipients, each answered after the dot
    assert_connections_reused(stats["sessions"], stats["messages"])


@pytest.mark.parametrize(
    "locustfile, host, expected",
    [
        ("smtp.py", "http://127.0.0.1:80", "unsupported host"),
        ("lmtp.py", "smtp://127.0.0.1:25", "speaks LMTP"),
        ("smtp.py", "smtp://127.0.0.1:99999", "out of range"),
    ],
)
def test_a_bad_host_is_one_clear_line(tmp_path, locustfile, host, expected):
    result = run_locust(locustfile, host, tmp_path / "bad")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("loadkit:")]
    assert len(errors) == 1 and expected in errors[0]
    assert "Traceback" not in result.stderr
