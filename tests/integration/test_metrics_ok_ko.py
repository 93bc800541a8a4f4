"""Accepted and failed messages apart (OK/KO), from real runs of `locust -f locustfiles/smtp.py`.

Against a closed port every message fails: the headline says 0 accepted and
shows the failures first, and no accepted percentile is made of refusals.
Against `loadkit sink --reject rcpt:550:0.3` the accepted and failed counts
equal what the sink answered: its messages and its 550 replies.
"""

from __future__ import annotations

import re
import subprocess
import sys

from loadkit.hdr import decode
from loadkit.report._html import MISSING
from tests.conftest import free_port
from tests.integration.peers import loadkit_sink
from tests.integration.test_metrics_locust_headless import (
    only_folder,
    read_intervals,
    run_locust,
)
from tests.unit.test_report import read_glance, read_tables


def loadkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadkit", *args], capture_output=True, text=True, timeout=120, check=False)


def send_series(folder) -> list[dict]:
    return [s for interval in read_intervals(folder) for s in interval["series"] if s["kind"] == "request"]


def histogram_count(series: list[dict], key: str) -> int:
    return sum(decode(s[key]).total_count for s in series if s.get(key))


def report_page(folder, tmp_path) -> str:
    result = loadkit("report", str(folder), "-o", str(tmp_path / "report.html"))
    assert result.returncode == 0, result.stderr
    return (tmp_path / "report.html").read_text(encoding="utf-8")


def test_a_closed_port_headlines_zero_accepted_and_the_failures_first(tmp_path):
    result = run_locust(f"smtp://127.0.0.1:{free_port()}", tmp_path / "results")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    folder = only_folder(tmp_path / "results")
    series = send_series(folder)
    ok, failed = sum(s["ok"] for s in series), sum(s["failed"] for s in series)
    assert ok == 0 and failed > 0, result.stderr[-2000:]
    assert histogram_count(series, "histogram") == 0  # no refusal among the accepted times
    assert histogram_count(series, "failed_histogram") == failed
    assert sum(s["bytes"] for s in series) == 0  # nothing was sent

    glance = read_glance(report_page(folder, tmp_path))
    assert glance["messages accepted"] == "0"
    assert glance["messages failed"].startswith(f"{failed:,}") and "100" in glance["messages failed"]
    assert list(glance).index("messages failed") < list(glance).index("messages accepted")
    assert glance["p95 accepted"] == MISSING and glance["p95 failed"].endswith(" ms")

    checked = loadkit("check", str(folder), "--check", "p95<1s", "--check", "failed.p95<10s")
    assert checked.returncode == 3, checked.stdout  # p95 of accepted messages: never measured
    assert "p95<1s: never measured: requests has no latency samples" in checked.stdout, checked.stdout
    assert "PASSED  failed.p95<10s" in checked.stdout, checked.stdout


def test_a_rate_of_rejects_splits_ok_and_failed_as_the_sink_answered(tmp_path):
    with loadkit_sink(tmp_path, "--reject", "rcpt:550:0.3", "--seed", "1") as (url, read_stats):
        result = run_locust(url, tmp_path / "results")
        sink = read_stats()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]  # Locust: 1 when any failed
    folder = only_folder(tmp_path / "results")
    series = send_series(folder)
    ok, failed = sum(s["ok"] for s in series), sum(s["failed"] for s in series)
    assert ok == sink["messages"] > 0
    assert failed == sink["replies"]["550"] > 0
    assert histogram_count(series, "histogram") == ok
    assert histogram_count(series, "failed_histogram") == failed

    page = report_page(folder, tmp_path)
    glance = read_glance(page)
    assert glance["messages accepted"] == f"{ok:,}"
    assert glance["messages failed"].startswith(f"{failed:,}")
    assert list(glance).index("messages accepted") < list(glance).index("messages failed")  # most were accepted
    summary = read_tables(page)["summary"]
    failed_rows = [row for row in summary if row["Name"] == "send (failed)"]
    assert len(failed_rows) == 1 and failed_rows[0]["Count"] == f"{failed:,}"
    assert failed_rows[0]["p50 ms"] not in ("", "-")


def test_loadkit_source_gives_the_delivered_times_and_the_failed_ones_apart(tmp_path):
    with loadkit_sink(tmp_path, "--reject", "rcpt:550:0.3", "--seed", "1") as (url, read_stats):
        result = loadkit("source", "-A", "-d", "-s", "4", "-m", "400", url.split("://", 1)[1])
        sink = read_stats()
    assert result.returncode == 1, result.stderr  # some failed
    summary = re.search(r"400 messages \((\d+) delivered, (\d+) failed\).* msgs/s delivered", result.stdout)
    assert summary is not None, result.stdout
    delivered, failed = int(summary[1]), int(summary[2])
    assert (delivered, failed) == (sink["messages"], sink["replies"]["550"])
    assert re.search(r"^latency ms: p50 [0-9.]+ ", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^failed ms: p50 [0-9.]+ .*\(\d+ msgs/s\)$", result.stdout, re.MULTILINE), result.stdout
