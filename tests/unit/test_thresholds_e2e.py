"""Thresholds on end-to-end delivery (e2e.json) and the server's side (probes.jsonl), on folders made by the writers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loadkit.hdr import encode, new_histogram, record_ms
from loadkit.results import (
    open_events,
    open_metrics,
    open_probes,
    write_e2e,
    write_event,
    write_interval,
    write_probe_row,
    write_run_json,
)
from loadkit.server_side import queue_growth, queue_max
from loadkit.thresholds import ThresholdError, evaluate, parse


def finished_folder(path, delays_ms=(), e2e_counts=None, queue=None):
    """A finished run's folder; e2e.json when `e2e_counts`, Postfix queue samples (one a second) when `queue`."""
    with open_metrics(path) as out:
        write_interval(out, {"start": 100.0, "end": 110.0, "series": [
            {"kind": "request", "type": "SMTP", "name": "send", "ok": 100, "failed": 0, "bytes": 0, "errors": {},
             "histogram": ""}]})
    with open_events(path) as out:
        write_event(out, "run_started", at=100.0)
        write_event(out, "run_stopped", at=110.0)
    if e2e_counts is not None:
        histogram = new_histogram()
        record_ms(histogram, list(delays_ms))
        write_e2e(path, {**e2e_counts, "latency_histogram": encode(histogram) if delays_ms else ""})
    if queue is not None:
        with open_probes(path) as out:
            for second, total in enumerate(queue):
                write_probe_row(out, {"time": 100.0 + second, "probe": "postfix", "total": total, "active": total})
                write_probe_row(out, {"time": 100.0 + second, "probe": "host", "cpu_percent": 5.0})
    write_run_json(path, started_at=100.0, stopped_at=110.0)
    return path


COUNTS = {"accepted": 100, "delivered": 98, "lost": 2, "duplicated": 1, "unexpected": 0}


def _verdicts(folder, expressions):
    return {v.expression: v for v in evaluate(folder, expressions)}


@pytest.mark.parametrize(("expression", "metric", "op", "limit", "unit"), [
    ("e2e.p99<500ms", "e2e.p99", "<", 500.0, "ms"),
    ("e2e.p(95)<=1s", "e2e.p95", "<=", 1000.0, "ms"),
    ("e2e.max<2s", "e2e.max", "<", 2000.0, "ms"),
    ("e2e.lost==0", "e2e.lost", "==", 0.0, ""),
    ("e2e.delivered>=1000", "e2e.delivered", ">=", 1000.0, ""),
    ("queue_growth<=0", "queue_growth", "<=", 0.0, "msgs/s"),
    ("queue_growth<=-0.5/s", "queue_growth", "<=", -0.5, "msgs/s"),
    ("queue_max<100", "queue_max", "<", 100.0, "msgs"),
])
def test_parse(expression, metric, op, limit, unit):
    threshold = parse(expression)
    assert (threshold.metric, threshold.op, threshold.limit, threshold.unit, threshold.scope) == \
        (metric, op, limit, unit, None)


@pytest.mark.parametrize(("expression", "complaint"), [
    ("e2e.lost==0ms", "is a count"),
    ("e2e.speed<3", "unknown end-to-end measure"),
    ("e2e.p99<5parsecs", "unknown time unit"),
    ("queue_growth<=0ms", "messages per second"),
    ("queue_max<10s", "count of messages"),
    ("e2e.p0<1", "percentile"),
    ("queue_growth", "no comparison"),
])
def test_bad_expressions_are_one_line(expression, complaint):
    with pytest.raises(ThresholdError) as raised:
        parse(expression)
    assert complaint in str(raised.value) and "\n" not in str(raised.value)


def test_end_to_end_measures(tmp_path):
    delays = [40.0] * 90 + [300.0] * 9 + [2500.0]
    folder = finished_folder(tmp_path, delays, COUNTS)
    verdicts = _verdicts(folder, ["e2e.p50<50ms", "e2e.p95<250ms", "e2e.p99<500ms", "e2e.max<2s", "e2e.lost==0",
                                  "e2e.duplicated==0", "e2e.delivered>=98", "e2e.accepted==100"])
    assert {k: v.status for k, v in verdicts.items()} == {
        "e2e.p50<50ms": "passed", "e2e.p95<250ms": "failed", "e2e.p99<500ms": "passed", "e2e.max<2s": "failed",
        "e2e.lost==0": "failed", "e2e.duplicated==0": "failed", "e2e.delivered>=98": "passed",
        "e2e.accepted==100": "passed"}
    assert verdicts["e2e.p50<50ms"].measured == pytest.approx(40.0, rel=0.002)
    assert verdicts["e2e.p95<250ms"].measured == pytest.approx(300.0, rel=0.002)
    assert verdicts["e2e.max<2s"].measured == pytest.approx(2500.0, rel=0.002)
    assert verdicts["e2e.lost==0"].measured == 2 and verdicts["e2e.duplicated==0"].measured == 1
    assert all(v.source == "e2e.json" for v in verdicts.values())


def test_queue_growth_is_the_least_squares_slope(tmp_path):
    growing = [0, 4, 5, 9, 11, 15]  # least squares: 20/7 msgs/s
    folder = finished_folder(tmp_path, queue=growing)
    verdicts = _verdicts(folder, ["queue_growth<=0", "queue_growth<=5", "queue_max<15", "queue_max<=15"])
    assert verdicts["queue_growth<=0"].status == "failed"
    assert verdicts["queue_growth<=0"].measured == pytest.approx(20 / 7)
    assert verdicts["queue_growth<=5"].status == "passed"
    assert verdicts["queue_max<15"].status == "failed" and verdicts["queue_max<15"].measured == 15
    assert verdicts["queue_max<=15"].status == "passed"
    assert verdicts["queue_growth<=0"].source == "probes.jsonl"


def test_capacity_and_thresholds_share_one_queue_slope():
    from loadkit.capacity.command import queue_growth as capacity_queue_growth

    rows = [{"time": 10.0 + t, "probe": "postfix", "total": 2 * t} for t in range(5)]
    assert capacity_queue_growth is queue_growth
    assert queue_growth(rows) == pytest.approx(2.0) and queue_max(rows) == 8
    assert queue_growth(rows[:1]) is None and queue_max([{"time": 1.0, "probe": "host"}]) is None


@pytest.mark.parametrize(("expression", "error"), [
    ("e2e.p99<500ms", "no readable e2e.json"),
    ("e2e.lost==0", "no readable e2e.json"),
    ("queue_growth<=0", "no probes.jsonl"),
    ("queue_max<10", "no probes.jsonl"),
])
def test_a_measure_the_run_never_took_is_an_error(tmp_path, expression, error):
    verdict = _verdicts(finished_folder(tmp_path), [expression])[expression]
    assert verdict.status == "error" and not verdict.passed and error in verdict.error


def test_nothing_delivered_or_one_queue_sample_is_an_error(tmp_path):
    folder = finished_folder(tmp_path, (), {**COUNTS, "delivered": 0, "lost": 100}, queue=[4])
    verdicts = _verdicts(folder, ["e2e.p99<1s", "e2e.lost==0", "queue_growth<=0", "queue_max<10"])
    assert verdicts["e2e.p99<1s"].status == "error" and "nothing delivered" in verdicts["e2e.p99<1s"].error
    assert verdicts["e2e.lost==0"].status == "failed" and verdicts["e2e.lost==0"].measured == 100
    assert verdicts["queue_growth<=0"].status == "error" and "too few" in verdicts["queue_growth<=0"].error
    assert verdicts["queue_max<10"].status == "passed" and verdicts["queue_max<10"].measured == 4


def test_a_damaged_histogram_is_an_error_not_a_traceback(tmp_path):
    folder = finished_folder(tmp_path, [10.0], COUNTS)
    write_e2e(folder, {**COUNTS, "latency_histogram": "not a histogram"})
    verdict = _verdicts(folder, ["e2e.p99<1s"])["e2e.p99<1s"]
    assert verdict.status == "error"


def test_loadkit_check_exits_3_on_an_e2e_failure_and_2_on_a_bad_one(tmp_path):
    folder = finished_folder(tmp_path, [40.0] * 10, {**COUNTS, "lost": 0, "duplicated": 0}, queue=[0, 0, 0])

    def check(*expressions):
        arguments = [a for e in expressions for a in ("--check", e)]
        return subprocess.run([sys.executable, "-m", "loadkit", "check", str(folder), *arguments],
                              capture_output=True, text=True, timeout=60)

    passed = check("e2e.lost==0", "e2e.p99<1s", "queue_growth<=0")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    failed = check("e2e.p99<10ms")
    assert failed.returncode == 3 and "FAILED" in failed.stdout
    bad = check("e2e.nonsense<1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
