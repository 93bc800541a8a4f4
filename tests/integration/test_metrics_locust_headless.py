"""`locust -f locustfiles/smtp.py --headless --results DIR`: the results folder, counted against real servers.

Against `loadkit sink` (test_locust_headless.py, which shares its run with
Locust's own CSV check) the histograms' totals must equal Locust's CSV and
the sink's own message count; against Postfix's smtp-sink rejecting every
RCPT, errors.csv must hold the server's reply, counted exactly.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.peers import postfix_sink

LOCUSTFILES = Path(__file__).resolve().parents[2] / "locustfiles"
PHASES = {"connect", "banner", "helo", "envelope", "end-of-data", "quit"}  # the sink offers PIPELINING
FOLDER_FILES = {"run.json", "metrics.jsonl", "events.jsonl", "errors.csv", "locust_stats.csv",
                "locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv"}


def run_locust(host: str, results: Path, *extra: str, cwd=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "smtp.py"), "-H", host, "--headless",
               "-u", "5", "-r", "5", "-t", "3s", "--only-summary", "--results", str(results), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


def only_folder(results: Path) -> Path:
    (folder,) = results.iterdir()
    return folder


def read_intervals(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def totals(intervals: list[dict], kind: str) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {}
    for interval in intervals:
        for series in interval["series"]:
            if series["kind"] == kind:
                ok_failed = counts.setdefault(series["name"], [0, 0])
                ok_failed[0] += series["ok"]
                ok_failed[1] += series["failed"]
    return counts


def locust_aggregated(folder: Path) -> dict:
    with open(folder / "locust_stats.csv", newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")


@pytest.mark.peer("smtp-sink")
def test_rejected_mail_in_errors_csv_and_a_failed_threshold_exits_3(tmp_path):
    """Postfix's smtp-sink -f RCPT rejects every recipient; the checks come from [tool.locust]."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.locust]\ncheck = ["fail_ratio<0.01", "phase.rcpt:failures>0", "nothing:p95<1s"]\n')
    with postfix_sink(options=("-f", "RCPT")) as sink:
        result = run_locust(f"smtp://{sink.url}", tmp_path / "results", cwd=tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    folder = only_folder(tmp_path / "results")
    failed = int(locust_aggregated(folder)["Failure Count"])
    assert failed == int(locust_aggregated(folder)["Request Count"]) > 0
    intervals = read_intervals(folder)
    assert totals(intervals, "request") == {"send": [0, failed]}
    assert totals(intervals, "phase")["rcpt"][1] == failed

    with open(folder / "errors.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["type"], row["name"], row["error"], row["phase"], row["code"]) == \
           ("SMTP", "send", "500 5.3.0 at RCPT", "rcpt", "500")
    assert int(row["count"]) == failed and "Error: command failed" in row["example"]

    verdicts = json.loads((folder / "verdicts.json").read_text())["verdicts"]
    assert [v["status"] for v in verdicts] == ["failed", "passed", "error"]
    assert "FAILED  fail_ratio<0.01" in result.stdout and "ERROR   nothing:p95<1s" in result.stdout


def test_a_bad_check_stops_the_run_before_it_starts(tmp_path):
    result = run_locust("smtp://127.0.0.1:9", tmp_path / "results", "--check", "p95<<250ms")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("loadkit:")]
    assert len(errors) == 1 and "p95<<250ms" in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
