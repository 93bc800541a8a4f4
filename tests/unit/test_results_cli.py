"""`loadkit check` and `loadkit report` accept the same damaged folders and the same plain Locust runs.

Each command runs as a person runs it, in a subprocess: no traceback, the
same exit code, the same counts, and the readers' notes in both the verdict
table and the page.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.unit.test_report import read_tables
from tests.unit.test_report_locust import DELIVERIES_PER_USER, SENDS_PER_USER, USERS, locust_results  # noqa: F401
from tests.unit.test_report_metrics import make_results

SECONDS, PER_SECOND = 4, 5  # one request name: 5 requests a line, 20 in all


def loadkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadkit", *args], capture_output=True, text=True, timeout=120)


def _damage(folder, case: str) -> None:
    metrics = folder / "metrics.jsonl"
    lines = metrics.read_bytes().splitlines()
    line = json.loads(lines[1])
    if case == "cut last line":
        metrics.write_bytes(metrics.read_bytes() + b'{"start": 1795652199.0, "end": 17956')
        return
    if case == "binary events.jsonl":
        (folder / "events.jsonl").write_bytes(bytes(range(256)) * 16)
        return
    if case == "random bytes":
        lines[1] = bytes(range(128, 256)) + b"\x00\x01garbage"
    elif case == "invalid UTF-8":
        lines[1] = lines[1].replace(b'"SMTP"', b'"SM\xff\xfeTP"')
    elif case == "garbage histogram":
        line["series"][0]["histogram"] = "HISTFAAAgarbage"
        lines[1] = json.dumps(line).encode()
    elif case == '"ok":"many"':
        line["series"][0]["ok"] = "many"
        lines[1] = json.dumps(line).encode()
    elif case == '"series":[1,2]':
        line["series"] = [1, 2]
        lines[1] = json.dumps(line).encode()
    metrics.write_bytes(b"\n".join(lines) + b"\n")


CASES = {  # case -> (requests read, the note, run complete)
    "cut last line": (20, "metrics.jsonl: 1 damaged line skipped (line 5)", True),
    "random bytes": (15, "metrics.jsonl: 1 damaged line skipped (line 2)", True),
    "invalid UTF-8": (15, "metrics.jsonl: 1 damaged line skipped (line 2)", True),
    "garbage histogram": (15, "metrics.jsonl: 1 damaged line skipped (line 2)", True),
    '"ok":"many"': (15, "metrics.jsonl: 1 damaged line skipped (line 2)", True),
    '"series":[1,2]': (15, "metrics.jsonl: 1 damaged line skipped (line 2)", True),
    "binary events.jsonl": (20, "events.jsonl: 17 damaged lines skipped (lines 1, 2, 3, 4, 5, ...)", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_and_report_read_a_damaged_folder_alike(tmp_path, case):
    requests, note, complete = CASES[case]
    folder = make_results(tmp_path / "run", seconds=SECONDS, per_second=PER_SECOND, names=(("SMTP", "send"),)).folder
    _damage(folder, case)
    checks = ["--check", f"requests=={requests}", "--check", "p99<10s", "--check", "no_worker_lost"]
    expected_code = 0 if complete else 3

    check = loadkit("check", str(folder), *checks)
    assert "Traceback" not in check.stderr + check.stdout
    assert (check.returncode, check.stderr) == (expected_code, ""), check.stdout
    assert f"note: {note}" in check.stdout.splitlines()
    assert f"PASSED  requests=={requests}" in check.stdout
    assert ("FAILED  run_complete" in check.stdout) is not complete

    report = loadkit("report", str(folder), "-o", str(tmp_path / "r.html"), *checks)
    assert "Traceback" not in report.stderr + report.stdout
    assert (report.returncode, report.stdout) == (expected_code, f"{tmp_path / 'r.html'}\n"), report.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert note in page
    tables = read_tables(page)
    verdicts = {row["Threshold"]: row["Result"] for row in tables["verdicts"]}
    assert verdicts[f"requests=={requests}"] == "pass"
    assert ("run_incomplete" in [row["Event"] for row in tables["events"]]) is not complete
    assert verdicts.get("run_complete", "pass") == ("pass" if complete else "FAIL")


@pytest.mark.parametrize("form", ["csv prefix", "json file"])
def test_check_and_report_measure_the_same_plain_locust_run(locust_results, tmp_path, form):
    results = str(locust_results / ("locust" if form == "csv prefix" else "stats.json"))
    sends = USERS * SENDS_PER_USER
    checks = ["--check", f"requests=={sends + USERS * DELIVERIES_PER_USER}", "--check", f"send:requests=={sends}",
              "--check", f"send:failures=={sends // 5}", "--check", "deliver:p99<=3", "--check", "p50>0"]
    check = loadkit("check", results, *checks)
    assert (check.returncode, check.stderr) == (0, ""), check.stdout
    assert "thresholds: 5 of 5 passed" in check.stdout and "run_complete" not in check.stdout
    report = loadkit("report", results, "-o", str(tmp_path / "r.html"), *checks)
    assert report.returncode == 0, report.stderr
    verdicts = read_tables((tmp_path / "r.html").read_text(encoding="utf-8"))["verdicts"]
    assert [row["Result"] for row in verdicts] == ["pass"] * 5
    missing_phase = loadkit("check", results, "--check", "phase.rcpt:p99<1s")
    assert missing_phase.returncode == 3 and "phases are only in metrics.jsonl" in missing_phase.stdout
