"""The Locust path itself: `locust -f locustfiles/...` headless against `loadkit sink`.

Locust's CSV, written by Locust, must count exactly what the sink received,
and so must the results folder's histograms; one smtp.py run serves both.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.integration.peers import loadkit_sink
from tests.integration.test_metrics_locust_headless import (
    FOLDER_FILES,
    PHASES,
    locust_aggregated,
    only_folder,
    read_intervals,
    totals,
)

LOCUSTFILES = Path(__file__).resolve().parents[2] / "locustfiles"
USERS = 8  # run_locust's -u
RUN_SECONDS = 3  # its -t
LOG_RESOLUTION = 0.001  # Locust's log times are in milliseconds
MESSAGES_PER_CONNECTION = 10


def assert_connections_reused(sessions: int, messages: int) -> None:
    """Each user opens ceil(its messages / 10) sessions; its last one may be cut short by the run's end."""
    assert math.ceil(messages / MESSAGES_PER_CONNECTION) <= sessions, (sessions, messages)
    assert sessions <= messages // MESSAGES_PER_CONNECTION + USERS, (sessions, messages)


def run_locust(locustfile: str, host: str, csv_prefix: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / locustfile), "-H", host,
        "--headless", "-u", str(USERS), "-r", str(USERS), "-t", f"{RUN_SECONDS}s", "--csv", str(csv_prefix), "--only-summary",
        "--results", str(csv_prefix.parent / "results"), *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def aggregated(csv_prefix: Path) -> dict:
    with open(f"{csv_prefix}_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    return rows["Aggregated"]


@pytest.fixture(scope="module")
def smtp_run(tmp_path_factory):
    """One headless run of locustfiles/smtp.py against `loadkit sink`, with thresholds:
    (Locust's completed process, its --csv prefix, its results folder, the sink's stats)."""
    tmp_path = tmp_path_factory.mktemp("smtp")
    with loadkit_sink(tmp_path) as (url, read_stats):
        result = run_locust("smtp.py", url, tmp_path / "smtp", "--check", "p99<10s", "--check",
                            "phase.envelope:p99<10s", "--check", "fail_ratio==0", "--check", "no_worker_lost")
        stats = read_stats()
    assert result.returncode == 0, result.stderr[-2000:]
    return SimpleNamespace(result=result, csv_prefix=tmp_path / "smtp", folder=only_folder(tmp_path / "results"),
                           sink=stats, url=url)


def test_smtp_locustfile_counts_match_the_sink(smtp_run):
    stats = smtp_run.sink
    row = aggregated(smtp_run.csv_prefix)
    assert int(row["Failure Count"]) == 0
    assert int(row["Request Count"]) == stats["messages"] > 0
    assert stats["recipients"] == stats["messages"]
    assert_connections_reused(stats["sessions"], stats["messages"])
    with open(f"{smtp_run.csv_prefix}_stats.csv", newline="") as handle:
        types = {row["Type"] for row in csv.DictReader(handle) if row["Name"] != "Aggregated"}
    assert types == {"SMTP"}  # phase timings ride in the event context, not as extra entries


def test_results_folder_counts_match_locust_and_the_sink(smtp_run):
    """The results folder (`--results DIR`): its histograms' totals equal Locust's CSV and the sink's count."""
    folder, sink, url = smtp_run.folder, smtp_run.sink, smtp_run.url
    assert folder.name.endswith("-smtp")
    assert FOLDER_FILES | {"verdicts.json", "junit.xml"} <= {p.name for p in folder.iterdir()}

    intervals = read_intervals(folder)
    requests = totals(intervals, "request")
    phases = totals(intervals, "phase")
    locust_count = int(locust_aggregated(folder)["Request Count"])
    assert requests == {"send": [sink["messages"], 0]}
    assert locust_count == sink["messages"] > 0
    assert set(phases) == PHASES
    # QUIT rides behind the last message of a full session only: each user's last session may be cut short
    full_sessions = phases["quit"][0]
    assert phases["quit"][1] == 0 and full_sessions <= sink["sessions"] <= full_sessions + USERS
    assert 0 <= sink["messages"] - MESSAGES_PER_CONNECTION * full_sessions <= (MESSAGES_PER_CONNECTION - 1) * USERS
    assert phases["envelope"] == phases["end-of-data"] == [sink["messages"], 0]
    assert phases["connect"][0] == sink["sessions"]  # one connect time per connection the sink saw
    assert [i["start"] for i in intervals] == sorted(i["start"] for i in intervals)
    assert max(i["users"] for i in intervals) == USERS

    run = json.loads((folder / "run.json").read_text())
    assert run["requests"] == run["recorded_requests"] == sink["messages"]
    assert run["user_classes"] == ["MailSender"] and run["target"] == url
    assert run["stopped_at"] > run["started_at"]
    events = [json.loads(line)["kind"] for line in (folder / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run_started" and events[-1] == "run_stopped" and "count_mismatch" not in events
    assert json.loads((folder / "verdicts.json").read_text())["passed"] is True
    assert "4 of 4 passed" in smtp_run.result.stdout


def test_the_run_lasts_its_run_time(smtp_run):
    """Locust's run-time timer fires no earlier than -t after it was set, however long the start took
    (set from gevent's stale clock, a 3 s run once stopped after 0.2 s on a busy machine)."""
    logged = {}
    for line in smtp_run.result.stderr.splitlines():
        for key, text in (("set", "Run time limit set to"), ("reached", "--run-time limit reached")):
            if text in line:
                logged[key] = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
    assert set(logged) == {"set", "reached"}, smtp_run.result.stderr[-2000:]
    assert (logged["reached"] - logged["set"]).total_seconds() >= RUN_SECONDS - LOG_RESOLUTION


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
