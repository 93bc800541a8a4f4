"""The ``--check`` grammar, read exactly: names, scopes, phases, percentiles, units, comparisons, and one-line errors.

Every accepted form is compared with the whole Threshold it gives (expression,
scope, metric, operator, limit in the metric's unit, failed); every refusal
with its message, so that a changed word or a wrong limit fails here.
"""

from __future__ import annotations

import pytest

from loadkit.errors import LoadkitError
from loadkit.thresholds import OPERATORS, Threshold, ThresholdError, is_measure, parse, parse_all, read_comparison

EXAMPLES = "e.g. p95<250ms, send:fail_ratio<0.01, phase.envelope:p99<20ms, no_worker_lost, e2e.p99<500ms"


@pytest.mark.parametrize("expression, scope, metric, op, limit, failed", [
    # percentiles: pNN, pNN.N, p(NN), times in ms by default
    ("p95<250", None, "p95", "<", 250.0, False),
    ("p95<250ms", None, "p95", "<", 250.0, False),
    ("p99.9<1s", None, "p99.9", "<", 1000.0, False),
    ("p(99)<=20", None, "p99", "<=", 20.0, False),
    ("p(99.99)>0.5", None, "p99.99", ">", 0.5, False),
    ("p100==3", None, "p100", "==", 3.0, False),
    ("p1<5", None, "p1", "<", 5.0, False),
    ("p0.5<5", None, "p0.5", "<", 5.0, False),
    ("p50>=2m", None, "p50", ">=", 120_000.0, False),
    ("p50<500us", None, "p50", "<", 0.5, False),
    ("p50<250µs", None, "p50", "<", 0.25, False),
    ("p95<1.5e3", None, "p95", "<", 1500.0, False),
    ("p95<.5s", None, "p95", "<", 500.0, False),
    ("p95<+3", None, "p95", "<", 3.0, False),
    # other times and their aliases
    ("min>=0.1ms", None, "min", ">=", 0.1, False),
    ("max<2s", None, "max", "<", 2000.0, False),
    ("avg<50", None, "mean", "<", 50.0, False),
    ("mean<50", None, "mean", "<", 50.0, False),
    ("median<30", None, "median", "<", 30.0, False),
    ("med<30s", None, "median", "<", 30_000.0, False),
    ("MAX<2S".replace("S", "s"), None, "max", "<", 2000.0, False),  # metric names in any case
    # ratios, rates, counts
    ("fail_ratio<0.01", None, "fail_ratio", "<", 0.01, False),
    ("fail_ratio<1%", None, "fail_ratio", "<", 0.01, False),
    ("fail_ratio<=100%", None, "fail_ratio", "<=", 1.0, False),
    ("fail_ratio==1", None, "fail_ratio", "==", 1.0, False),
    ("rps>500", None, "rps", ">", 500.0, False),
    ("rps>=500/s", None, "rps", ">=", 500.0, False),
    ("requests>=1000", None, "requests", ">=", 1000.0, False),
    ("failures==0", None, "failures", "==", 0.0, False),
    ("dropped==0", None, "dropped", "==", 0.0, False),
    # scopes: a request name or type, a phase, the open model's aliases
    ("send:p95<250ms", "send", "p95", "<", 250.0, False),
    ("SMTP:fail_ratio<1%", "SMTP", "fail_ratio", "<", 0.01, False),
    ("phase.envelope:p99<20ms", "phase.envelope", "p99", "<", 20.0, False),
    ("a:b:failures==0", "a:b", "failures", "==", 0.0, False),
    ("service.p99<50ms", "phase.service", "p99", "<", 50.0, False),
    ("lag.p(95)<=1s", "phase.lag", "p95", "<=", 1000.0, False),
    # failed requests' own times
    ("failed.p95<1s", None, "p95", "<", 1000.0, True),
    ("send:failed.max<2s", "send", "max", "<", 2000.0, True),
    ("failed.avg<3", None, "mean", "<", 3.0, True),
    # whole-run measures: end to end, the server's queue
    ("e2e.p99<500ms", None, "e2e.p99", "<", 500.0, False),
    ("e2e.p(99.9)<=2s", None, "e2e.p99.9", "<=", 2000.0, False),
    ("e2e.max<2s", None, "e2e.max", "<", 2000.0, False),
    ("e2e.avg<40", None, "e2e.mean", "<", 40.0, False),
    ("e2e.med<40us", None, "e2e.median", "<", 0.04, False),
    ("e2e.lost==0", None, "e2e.lost", "==", 0.0, False),
    ("e2e.duplicated==0", None, "e2e.duplicated", "==", 0.0, False),
    ("e2e.delivered>=1000", None, "e2e.delivered", ">=", 1000.0, False),
    ("e2e.accepted>=1000", None, "e2e.accepted", ">=", 1000.0, False),
    ("e2e.unexpected==0", None, "e2e.unexpected", "==", 0.0, False),
    ("queue_growth<=0", None, "queue_growth", "<=", 0.0, False),
    ("queue_growth<=-0.5/s", None, "queue_growth", "<=", -0.5, False),
    ("queue_max<100", None, "queue_max", "<", 100.0, False),
    # integrity checks take no comparison
    ("no_worker_lost", None, "no_worker_lost", "==", 0.0, False),
    ("no_worker_missing", None, "no_worker_missing", "==", 0.0, False),
    ("no_cpu_high", None, "no_cpu_high", "==", 0.0, False),
    ("generator_ok", None, "generator_ok", "==", 0.0, False),
    ("run_complete", None, "run_complete", "==", 0.0, False),
    ("rate_reached", None, "rate_reached", "==", 0.0, False),
])
def test_each_form_reads_to_its_threshold(expression, scope, metric, op, limit, failed):
    assert parse(expression) == Threshold(expression, scope, metric, op, pytest.approx(limit), failed)


@pytest.mark.parametrize("expression, normalised", [
    ("  p95 <  250 ms ", "p95 < 250 ms"),
    ("send :\tp95<1s", "send : p95<1s"),
    ("e2e.p99 <= 1 s", "e2e.p99 <= 1 s"),
])
def test_spaces_are_allowed_and_the_expression_is_kept_with_single_ones(expression, normalised):
    threshold = parse(expression)
    assert threshold.expression == normalised
    assert parse(normalised) == threshold


def test_a_scope_is_stripped_of_its_spaces():
    assert parse("send : p95<1").scope == "send"


@pytest.mark.parametrize("expression, unit", [
    ("p95<1", "ms"), ("e2e.p99<1", "ms"), ("max<1", "ms"), ("e2e.min<1", "ms"), ("failed.median<1", "ms"),
    ("rps>1", "req/s"), ("queue_growth<=0", "msgs/s"), ("queue_max<1", "msgs"),
    ("fail_ratio<1%", ""), ("requests>1", ""), ("e2e.lost==0", ""), ("no_worker_lost", ""),
])
def test_each_threshold_says_its_unit(expression, unit):
    assert parse(expression).unit == unit


@pytest.mark.parametrize("expression, percentile, end_to_end, server_side", [
    ("p99.9<1", 99.9, False, False), ("e2e.p(95)<1", 95.0, True, False), ("e2e.lost==0", None, True, False),
    ("max<1", None, False, False), ("queue_max<1", None, False, True), ("queue_growth<=0", None, False, True),
    ("phase.envelope:p50<1", 50.0, False, False), ("no_worker_lost", None, False, False),
])
def test_what_a_threshold_measures(expression, percentile, end_to_end, server_side):
    threshold = parse(expression)
    assert (threshold.percentile, threshold.end_to_end, threshold.server_side) == (percentile, end_to_end, server_side)


@pytest.mark.parametrize("op, below, equal, above", [
    ("<", True, False, False), ("<=", True, True, False), (">", False, False, True),
    (">=", False, True, True), ("==", False, True, False),
])
def test_each_comparison(op, below, equal, above):
    compare = OPERATORS[parse(f"p95{op}10").op]
    assert (compare(9.99, 10.0), compare(10.0, 10.0), compare(10.01, 10.0)) == (below, equal, above)


@pytest.mark.parametrize("expression, message", [
    ("", f"cannot read threshold '': expected [NAME:]METRIC<VALUE, {EXAMPLES}"),
    ("   ", f"cannot read threshold '   ': expected [NAME:]METRIC<VALUE, {EXAMPLES}"),
    ("p95<<3", f"cannot read threshold 'p95<<3': expected [NAME:]METRIC<VALUE, {EXAMPLES}"),
    ("p95<3 ms x", f"cannot read threshold 'p95<3 ms x': expected [NAME:]METRIC<VALUE, {EXAMPLES}"),
    ("p9.9.9<1", f"cannot read threshold 'p9.9.9<1': expected [NAME:]METRIC<VALUE, {EXAMPLES}"),
    ("p95=3", f"cannot read threshold 'p95=3': expected [NAME:]METRIC<VALUE, {EXAMPLES}"),
    ("send:e2e.p99<1", f"cannot read threshold 'send:e2e.p99<1': expected [NAME:]METRIC<VALUE, {EXAMPLES}"),
    ("p95", f"threshold 'p95': no comparison; {EXAMPLES}"),
    ("send:max", f"threshold 'send:max': no comparison; {EXAMPLES}"),
    ("e2e.lost", "threshold 'e2e.lost': no comparison; e.g. e2e.lost<=0"),
    ("queue_growth", "threshold 'queue_growth': no comparison; e.g. queue_growth<=0"),
    ("p95<3parsecs", "threshold 'p95<3parsecs': unknown time unit 'parsecs' (us, ms, s, m)"),
    ("max<3h", "threshold 'max<3h': unknown time unit 'h' (us, ms, s, m)"),
    ("e2e.p99<5%", "threshold 'e2e.p99<5%': unknown time unit '%' (us, ms, s, m)"),
    ("p0<1", "threshold 'p0<1': percentile must be above 0 and at most 100"),
    ("p100.1<1", "threshold 'p100.1<1': percentile must be above 0 and at most 100"),
    ("e2e.p0<1", "threshold 'e2e.p0<1': percentile must be above 0 and at most 100"),
    ("e2e.p(101)<1", "threshold 'e2e.p(101)<1': percentile must be above 0 and at most 100"),
    ("p95<-1", "threshold 'p95<-1': a time is never negative"),
    ("e2e.max<-1s", "threshold 'e2e.max<-1s': a time is never negative"),
    ("fail_ratio<2", "threshold 'fail_ratio<2': fail_ratio is at most 1 (or 100%)"),
    ("fail_ratio<101%", "threshold 'fail_ratio<101%': fail_ratio is at most 1 (or 100%)"),
    ("fail_ratio<3ms", "threshold 'fail_ratio<3ms': fail_ratio is a fraction (0.01) or a percentage (1%)"),
    ("fail_ratio<-0.1", "threshold 'fail_ratio<-0.1': fail_ratio is never negative"),
    ("rps>5ms", "threshold 'rps>5ms': rps takes a plain number (requests per second)"),
    ("requests>1s", "threshold 'requests>1s': requests is a count, without a unit"),
    ("failures<-1", "threshold 'failures<-1': a count is never negative"),
    ("e2e.lost==0ms", "threshold 'e2e.lost==0ms': e2e.lost is a count, without a unit"),
    ("queue_growth<=0ms", "threshold 'queue_growth<=0ms': queue_growth is in messages per second (a plain number)"),
    ("queue_max<10s", "threshold 'queue_max<10s': queue_max is a count of messages, without a unit"),
    ("no_worker_lost<1", "threshold 'no_worker_lost<1': no_worker_lost is a check of its own, without a comparison"),
    ("send:run_complete", "threshold 'send:run_complete': run_complete applies to the whole run, not to 'send'"),
    (":p95<1", "threshold ':p95<1': empty name before ':'"),
    (" : p95<1", "threshold ' : p95<1': empty name before ':'"),
    ("failed.requests>1", "threshold 'failed.requests>1': failed. takes a time (failed.p95, failed.max, ...), not requests"),
    ("failed.no_worker_lost", "threshold 'failed.no_worker_lost': failed. takes a time (failed.p95, failed.max, ...), "
                              "not no_worker_lost"),
    ("failed.p0<1", "threshold 'failed.p0<1': percentile must be above 0 and at most 100"),
    ("latency<1", "threshold 'latency<1': unknown metric 'latency' (known: pNN, min, max, avg, median, fail_ratio, rps, "
                  "requests, failures, e2e.*, queue_growth, queue_max, no_worker_lost, no_worker_missing, no_cpu_high, "
                  "generator_ok, run_complete, rate_reached)"),
    ("e2e.speed<3", "threshold 'e2e.speed<3': unknown end-to-end measure 'e2e.speed' (known: e2e.pNN, e2e.max, "
                    "e2e.min, e2e.avg, e2e.median, e2e.accepted, e2e.delivered, e2e.duplicated, e2e.lost, e2e.unexpected)"),
])
def test_bad_input_is_one_line_that_says_what_is_wrong(expression, message):
    with pytest.raises(ThresholdError) as raised:
        parse(expression)
    assert str(raised.value) == message
    assert isinstance(raised.value, LoadkitError)


def test_parse_all_reads_texts_and_keeps_parsed_thresholds():
    parsed = parse("p95<1s")
    assert parse_all(["p95<1s", parsed, "no_worker_lost"]) == [parsed, parsed, parse("no_worker_lost")]
    assert parse_all(None) == [] and parse_all([]) == []
    with pytest.raises(ThresholdError):
        parse_all(["p95<1s", "nonsense<1"])


@pytest.mark.parametrize("name, measure", [
    ("e2e.p99", True), ("e2e.p(99.9)", True), ("e2e.lost", True), ("queue_growth", True), ("queue_max", True),
    ("p99", False), ("queue_size", False), ("e2e.", False), ("send:e2e.p99", False), ("e2e.p99x", False),
])
def test_whole_run_measures(name, measure):
    assert is_measure(name) is measure


@pytest.mark.parametrize("text, name, op, value, unit", [
    ("p95<250ms", "p95", "<", 250.0, "ms"),
    ("a<b:p95 <= 1.5 s", "a<b:p95", "<=", 1.5, "s"),
    ("queue_growth>=-2/s", "queue_growth", ">=", -2.0, "/s"),
    ("rate_reached", "rate_reached", None, None, ""),
    ("x==1e-3%", "x", "==", 0.001, "%"),
])
def test_read_comparison_splits_name_operator_value_and_unit(text, name, op, value, unit):
    comparison = read_comparison(text, text)
    assert (comparison.name, comparison.op, comparison.value, comparison.unit) == (name, op, value, unit)


def test_a_comparisons_errors_name_the_expression_with_its_own_noun_and_class():
    class LimitLike(LoadkitError):
        pass

    comparison = read_comparison(" p99 < 3 parsecs", "p99 < 3 parsecs", noun="limit", error=LimitLike)
    with pytest.raises(LimitLike, match=r"^limit ' p99 < 3 parsecs': unknown time unit 'parsecs' \(us, ms, s, m\)$"):
        comparison.time_ms()
    with pytest.raises(LimitLike, match=r"^cannot read limit ' p99 < 3 parsecs': a hint$"):
        comparison.unreadable("a hint")
    assert read_comparison("x", "x", noun="limit", error=LimitLike).op is None
    with pytest.raises(LimitLike, match=r"^limit 'x': no comparison; a hint$"):
        read_comparison("x", "x", noun="limit", error=LimitLike).require_op("a hint")
