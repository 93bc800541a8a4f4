"""Thresholds: parsing, each form passing and failing where it should, unmeasured names, outputs, `loadkit check`."""

from __future__ import annotations

import json
import subprocess
import sys
from xml.etree import ElementTree

import pytest

from loadkit.hdr import record_ms
from loadkit.metrics._intervals import IntervalStore
from loadkit.metrics._series import Series
from loadkit.thresholds import ThresholdError, evaluate, format_table, parse, read_verdicts, write_verdicts


@pytest.fixture
def results(tmp_path):
    """A run of 10 s: 'send' 990 ok + 10 failed at 1..1000 ms, 'auth' 100 at 5 ms, RCPT at 0.5 ms."""
    send = Series("request", "SMTP", "send", ok=990, failed=10, errors={"550 5.1.1 at RCPT": 10})
    record_ms(send.histogram, [float(ms) for ms in range(1, 1001)])
    auth = Series("request", "SMTP", "auth", ok=100)
    record_ms(auth.histogram, [5.0] * 100)
    rcpt = Series("phase", "SMTP", "rcpt", ok=1090, failed=10)
    record_ms(rcpt.histogram, [0.5] * 1100)
    with open(tmp_path / "metrics.jsonl", "w") as out:
        store = IntervalStore(out)
        store.add(1000.0, 1001.0, [send, auth])
        store.add(1003.0, 1004.0, [rcpt])
        store.flush()
    (tmp_path / "run.json").write_text(json.dumps({"started_at": 1000.0, "stopped_at": 1010.0}))
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in (
        {"time": 1000.0, "kind": "run_started", "worker": None, "detail": ""},
        {"time": 1005.0, "kind": "worker_missing", "worker": "w1", "detail": ""},
        {"time": 1010.0, "kind": "run_stopped", "worker": None, "detail": ""},
    )))
    return tmp_path


@pytest.mark.parametrize("expression, metric, scope, op, limit", [
    ("p95<250ms", "p95", None, "<", 250.0),
    ("p99.9<1s", "p99.9", None, "<", 1000.0),
    ("p(99) <= 20", "p99", None, "<=", 20.0),
    ("send:p95<250ms", "p95", "send", "<", 250.0),
    ("phase.rcpt:p99<20ms", "p99", "phase.rcpt", "<", 20.0),
    ("max<2s", "max", None, "<", 2000.0),
    ("avg<500us", "mean", None, "<", 0.5),
    ("med<1m", "median", None, "<", 60_000.0),
    ("fail_ratio<0.01", "fail_ratio", None, "<", 0.01),
    ("fail_ratio<1%", "fail_ratio", None, "<", 0.01),
    ("rps>500", "rps", None, ">", 500.0),
    ("requests>=1000", "requests", None, ">=", 1000.0),
    ("a:b:failures==0", "failures", "a:b", "==", 0.0),
    ("no_worker_lost", "no_worker_lost", None, "==", 0.0),
])
def test_parse(expression, metric, scope, op, limit):
    threshold = parse(expression)
    assert (threshold.metric, threshold.scope, threshold.op) == (metric, scope, op)
    assert threshold.limit == pytest.approx(limit)


@pytest.mark.parametrize("expression, complaint", [
    ("", "cannot read"),
    ("p95<<3", "cannot read"),
    ("p95", "no comparison"),
    ("p95<3parsecs", "unknown time unit"),
    ("p0<1", "percentile"),
    ("p101<1", "percentile"),
    ("fail_ratio<2", "at most 1"),
    ("fail_ratio<3ms", "fraction"),
    ("rps>5ms", "plain number"),
    ("requests>1s", "count"),
    ("latency<1", "unknown metric"),
    ("no_worker_lost<1", "without a comparison"),
    ("send:no_worker_lost", "whole run"),
    (":p95<1", "empty name"),
])
def test_bad_expressions_are_one_line(expression, complaint):
    with pytest.raises(ThresholdError) as raised:
        parse(expression)
    message = str(raised.value)
    assert complaint in message and "\n" not in message


@pytest.mark.parametrize("passing, failing", [
    ("p95<1s", "p95<900ms"),
    ("p99.9<=1001", "p99.9<999"),
    ("max<2s", "max<999"),
    ("min<=1", "min>1"),
    ("avg>450", "avg<450"),
    ("send:median<=501", "send:median<499"),
    ("median<460", "median<440"),  # with auth's 100 requests at 5 ms
    ("send:p95<951", "send:p95<949"),
    ("auth:max<6ms", "auth:max<5ms"),
    ("SMTP:requests==1100", "SMTP:requests<1100"),  # a request type as scope
    ("fail_ratio<0.01", "fail_ratio<0.009"),  # 10 of 1100
    ("send:fail_ratio<=1%", "send:fail_ratio<1%"),  # exactly 10 of 1000
    ("rps>=110", "rps>110"),  # 1100 requests in 10 s
    ("send:rps>99", "send:rps>101"),
    ("requests==1100", "requests>1100"),
    ("failures==10", "failures==0"),
    ("phase.rcpt:p99<1ms", "phase.rcpt:p99<0.4ms"),
    ("phase.rcpt:fail_ratio<0.01", "phase.rcpt:failures==0"),
    ("no_worker_lost", "no_worker_missing"),
    ("no_cpu_high", "no_worker_missing"),
])
def test_each_form_passes_and_fails_where_it_should(results, passing, failing):
    verdicts = evaluate(results, [passing, failing])
    assert [v.status for v in verdicts] == ["passed", "failed"], verdicts


def test_measured_values(results):
    p95, rps, ratio = evaluate(results, ["send:p95<1", "rps>1", "fail_ratio<1"])
    assert p95.measured == pytest.approx(950, rel=0.001) and p95.unit == "ms" and p95.source == "metrics.jsonl"
    assert rps.measured == pytest.approx(110.0) and rps.unit == "req/s"
    assert ratio.measured == pytest.approx(10 / 1100)


@pytest.mark.parametrize("expression, error", [
    ("nothing:p95<1s", "no request named 'nothing'"),
    ("phase.starttls:p99<1", "no phase 'starttls'"),
])
def test_a_name_the_run_never_measured_is_an_error(results, expression, error):
    (verdict,) = evaluate(results, [expression])
    assert verdict.status == "error" and not verdict.passed
    assert "never measured" in verdict.error and error in verdict.error


def test_integrity_without_events_is_an_error(results):
    (results / "events.jsonl").unlink()
    (verdict,) = evaluate(results, ["no_worker_lost"])
    assert verdict.status == "error" and "events.jsonl" in verdict.error


def test_locust_csv_alone(tmp_path):
    """A folder with nothing but Locust's own CSV (written by Locust, in a process of its own)."""
    script = f"""
from locust.env import Environment
from loadkit.metrics._csv import LocustCsv
environment = Environment(user_classes=[])
for ms in range(1, 101):
    environment.stats.log_request("SMTP", "send", ms, 100)
environment.stats.log_error("SMTP", "send", "550 5.1.1 at RCPT")
LocustCsv(environment, {str(tmp_path / "locust")!r}).finish()
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    verdicts = evaluate(tmp_path, ["requests==100", "send:failures==1", "p95<=96", "max<=100",
                                   "send:p95<90", "phase.rcpt:p99<1", "other:p95<1"])
    assert [v.status for v in verdicts] == ["passed", "passed", "passed", "passed", "failed", "error", "error"]
    assert verdicts[0].source == "locust_stats.csv" and verdicts[2].measured == 96  # Locust rounds its percentiles


def test_verdict_files_and_table(results):
    verdicts = evaluate(results, ["p95<1s", "p95<900ms", "nothing:p95<1"])
    json_path, junit_path = write_verdicts(results, verdicts)
    data = json.loads(json_path.read_text())
    assert data["passed"] is False
    assert [v["status"] for v in data["verdicts"]] == ["passed", "failed", "error"]
    assert [v.status for v in read_verdicts(results)] == ["passed", "failed", "error"]
    suite = ElementTree.parse(junit_path).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert cases[1].find("failure") is not None and cases[2].find("error") is not None
    table = format_table(verdicts)
    assert "FAILED  p95<900ms" in table and "1 of 3 passed" in table


def loadkit_check(*args):
    return subprocess.run([sys.executable, "-m", "loadkit", "check", *args], capture_output=True, text=True, timeout=60)


def test_loadkit_check_exit_codes(results, tmp_path):
    passed = loadkit_check(str(results), "--check", "p95<1s", "--check", "no_worker_lost",
                           "--junit", str(tmp_path / "out.xml"))
    assert passed.returncode == 0, passed.stderr
    assert "2 of 2 passed" in passed.stdout and (tmp_path / "out.xml").is_file()
    failed = loadkit_check(str(results), "--check", "p95<1s", "--check", "send:p99<10ms")
    assert failed.returncode == 3 and "FAILED  send:p99<10ms" in failed.stdout
    unmeasured = loadkit_check(str(results), "--check", "nothing:p95<1s")
    assert unmeasured.returncode == 3 and "never measured" in unmeasured.stdout
    for bad in (["--check", "p95<<1"], ["--check", "p95<1s", "--json", str(tmp_path / "no" / "such" / "dir.json")]):
        result = loadkit_check(str(results), *bad)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    missing = loadkit_check(str(tmp_path / "nowhere"), "--check", "p95<1s")
    assert missing.returncode == 2 and "no such results folder" in missing.stderr
