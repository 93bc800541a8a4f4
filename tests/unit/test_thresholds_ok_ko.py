"""Thresholds on accepted and failed requests apart (OK/KO), and the integrity checks every run gets."""

from __future__ import annotations

import json

import pytest

from loadkit.hdr import new_histogram, record_ms
from loadkit.metrics._intervals import IntervalStore
from loadkit.metrics._series import Series
from loadkit.thresholds import ThresholdError, evaluate, parse


def write_run(folder, events=()):
    """'send': 900 accepted at 10..18 ms, 100 failed at 0.1 ms (refused at once)."""
    send = Series("request", "SMTP", "send", ok=900, failed=100, errors={"550 5.1.1 at RCPT": 100})
    record_ms(send.histogram, [10.0 + (i % 9) for i in range(900)])
    send.failed_histogram = new_histogram()
    record_ms(send.failed_histogram, [0.1] * 100)
    with open(folder / "metrics.jsonl", "w") as out:
        store = IntervalStore(out)
        store.add(1000.0, 1001.0, [send])
        store.flush()
    (folder / "run.json").write_text(json.dumps({"started_at": 1000.0, "stopped_at": 1010.0}))
    lines = [{"time": 1000.0, "kind": "run_started", "worker": None, "detail": ""}, *events,
             {"time": 1010.0, "kind": "run_stopped", "worker": None, "detail": ""}]
    (folder / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in lines))
    return folder


def by_expression(verdicts):
    return {v.expression: v for v in verdicts}


def test_percentiles_are_of_accepted_requests_and_failed_ones_have_their_own(tmp_path):
    verdicts = by_expression(evaluate(write_run(tmp_path), ["p50>=10ms", "min>=10ms", "failed.p50<1ms",
                                                           "send:failed.max<1ms", "requests==1000", "failures==100"]))
    assert all(v.passed for v in verdicts.values()), verdicts
    assert verdicts["failed.p50<1ms"].measured == pytest.approx(0.1, rel=0.01)
    assert verdicts["min>=10ms"].measured == pytest.approx(10.0, rel=0.01)  # 0.1 ms refusals are not in it


def test_failed_times_of_a_run_without_failures_are_never_measured(tmp_path):
    folder = write_run(tmp_path)
    (verdict,) = evaluate(folder, ["auth:failed.p95<1s"])
    assert verdict.status == "error"
    send = Series("request", "SMTP", "ok", ok=10)
    record_ms(send.histogram, [1.0] * 10)
    with open(folder / "metrics.jsonl", "a") as out:
        store = IntervalStore(out)
        store.add(1002.0, 1003.0, [send])
        store.flush()
    (verdict,) = evaluate(folder, ["ok:failed.p95<1s"])
    assert verdict.status == "error" and "no failed requests with a time" in verdict.error


@pytest.mark.parametrize("expression", ["failed.requests>1", "failed.fail_ratio<1%", "failed.no_worker_lost"])
def test_failed_takes_only_times(expression):
    with pytest.raises(ThresholdError, match="failed. takes a time"):
        parse(expression)


def test_parse_failed():
    threshold = parse("send:failed.p(99)<2s")
    assert (threshold.scope, threshold.metric, threshold.limit, threshold.failed) == ("send", "p99", 2000.0, True)
    assert parse("p99<2s").failed is False


@pytest.mark.parametrize("kind", ["generator_cpu_high", "host_cpu_saturated", "cpu_high"])
def test_a_saturated_generator_fails_every_run_of_checks(tmp_path, kind):
    event = {"time": 1004.0, "kind": kind, "worker": "w1", "detail": "CPU at 97%"}
    verdicts = by_expression(evaluate(write_run(tmp_path, [event]), ["p95<1s"]))
    assert verdicts["p95<1s"].passed
    generator = verdicts["generator_ok"]
    assert (generator.passed, generator.measured) == (False, 1.0)
    assert generator.detail == f"{kind} on w1: CPU at 97%"


def test_a_quiet_generator_adds_no_verdict_and_passes_when_asked(tmp_path):
    folder = write_run(tmp_path)
    assert [v.expression for v in evaluate(folder, ["p95<1s"])] == ["p95<1s"]
    (verdict,) = evaluate(folder, ["generator_ok"])
    assert verdict.passed and verdict.measured == 0


def test_no_cpu_high_counts_old_and_new_events(tmp_path):
    events = [{"time": 1002.0, "kind": "cpu_high", "worker": None, "detail": ""},
              {"time": 1003.0, "kind": "generator_cpu_high", "worker": None, "detail": ""}]
    verdicts = by_expression(evaluate(write_run(tmp_path, events), ["no_cpu_high"]))
    assert verdicts["no_cpu_high"].measured == 2 and not verdicts["no_cpu_high"].passed
