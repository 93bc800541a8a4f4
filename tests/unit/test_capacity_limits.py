"""Capacity's limits are read with the ``--check`` grammar: the same names mean the same, errors are one line."""

from __future__ import annotations

import pytest

from loadkit.capacity import Limit, LimitCheck, LimitError, StepResult, parse_limit, parse_limits
from loadkit.errors import LoadkitError
from loadkit.thresholds import parse


@pytest.mark.parametrize("expression, limit", [
    ("p99<200ms", Limit("p99<200ms", "corrected.p99", "<", 200.0, "ms")),
    ("p(99.9) <= 0.2 s", Limit("p(99.9)<=0.2s", "corrected.p99.9", "<=", 200.0, "ms")),
    ("service.p(95)>=2m", Limit("service.p(95)>=2m", "service.p95", ">=", 120_000.0, "ms")),
    ("lag.p50==500us", Limit("lag.p50==500us", "lag.p50", "==", 0.5, "ms")),
    ("error_ratio<0.1%", Limit("error_ratio<0.1%", "error_ratio", "<", 0.001, "")),
    ("error_ratio>0.5", Limit("error_ratio>0.5", "error_ratio", ">", 0.5, "")),
    ("rate_reached", Limit("rate_reached", "rate_reached", ">=", 0.99, "")),
    ("rate_reached>=95%", Limit("rate_reached>=95%", "rate_reached", ">=", 0.95, "")),
    ("rate_reached>=0.5", Limit("rate_reached>=0.5", "rate_reached", ">=", 0.5, "")),
    ("rate_reached>=100%", Limit("rate_reached>=100%", "rate_reached", ">=", 1.0, "")),
    ("apache.busy_workers<150", Limit("apache.busy_workers<150", "apache.busy_workers", "<", 150.0, "")),
    ("host.load>-1", Limit("host.load>-1", "host.load", ">", -1.0, "")),
])
def test_parse_limit(expression, limit):
    assert parse_limit(expression) == Limit(limit.expression, limit.measure, limit.op, pytest.approx(limit.value), limit.unit)


@pytest.mark.parametrize("expression", [
    "e2e.p99<500ms", "e2e.p(99.9)<=2s", "e2e.max<2s", "e2e.avg<40", "e2e.lost==0", "e2e.delivered>=10",
    "queue_growth<=0", "queue_growth<5/s", "queue_growth<=-0.5", "queue_max<100",
])
def test_whole_run_measures_mean_what_they_mean_in_check(expression):
    threshold = parse(expression)
    assert parse_limit(expression) == Limit(expression, threshold.metric, threshold.op, threshold.limit, threshold.unit)


@pytest.mark.parametrize("expression, message", [
    ("", "cannot read limit '': e.g. p99<200ms, error_ratio<0.1%, queue_growth<=0, e2e.p99<500ms, rate_reached"),
    ("<5", "cannot read limit '<5': e.g. p99<200ms, error_ratio<0.1%, queue_growth<=0, e2e.p99<500ms, rate_reached"),
    ("9lives<1", "cannot read limit '9lives<1': e.g. p99<200ms, error_ratio<0.1%, queue_growth<=0, e2e.p99<500ms, "
                 "rate_reached"),
    ("p99", "limit 'p99': no comparison; e.g. p99<200ms, error_ratio<0.1%, queue_growth<=0, e2e.p99<500ms, rate_reached"),
    ("apache.busy", "limit 'apache.busy': no comparison; e.g. p99<200ms, error_ratio<0.1%, queue_growth<=0, "
                    "e2e.p99<500ms, rate_reached"),
    ("e2e.lost", "limit 'e2e.lost': no comparison; e.g. e2e.lost<=0"),
    ("p99<3xs", "limit 'p99<3xs': unknown time unit 'xs' (us, ms, s, m)"),
    ("p0<1s", "limit 'p0<1s': percentile must be above 0 and at most 100"),
    ("service.p(100.5)<1", "limit 'service.p(100.5)<1': percentile must be above 0 and at most 100"),
    ("p99<-1", "limit 'p99<-1': a time is never negative"),
    ("error_ratio<2", "limit 'error_ratio<2': error_ratio is at most 1 (or 100%)"),
    ("error_ratio<1ms", "limit 'error_ratio<1ms': error_ratio is a fraction (0.01) or a percentage (1%)"),
    ("rate_reached<3", "limit 'rate_reached<3': rate_reached takes a bound as rate_reached>=95% (or >=0.95)"),
    ("rate_reached>=95ms", "limit 'rate_reached>=95ms': rate_reached takes a bound as rate_reached>=95% (or >=0.95)"),
    ("rate_reached>=0%", "limit 'rate_reached>=0%': the bound of rate_reached is above 0 and at most 100%"),
    ("rate_reached>=101%", "limit 'rate_reached>=101%': rate_reached is at most 1 (or 100%)"),
    ("queue_growth<=0ms", "limit 'queue_growth<=0ms': queue_growth is in messages per second (a plain number)"),
    ("e2e.lost==0ms", "limit 'e2e.lost==0ms': e2e.lost is a count, without a unit"),
    ("apache.busy_workers<1s", "limit 'apache.busy_workers<1s': unknown unit 's' for apache.busy_workers"),
])
def test_bad_limits_are_one_line(expression, message):
    with pytest.raises(LimitError) as caught:
        parse_limit(expression)
    assert str(caught.value) == message and isinstance(caught.value, LoadkitError)


def test_parse_limits_adds_rate_reached_once():
    given = parse_limit("p99<1s")
    assert parse_limits([given, "error_ratio<1%"]) == [given, parse_limit("error_ratio<1%"), parse_limit("rate_reached")]
    assert parse_limits(["rate_reached>=90%"]) == [parse_limit("rate_reached>=90%")]
    assert parse_limits(["p99<1s"], rate_reached=False) == [given]
    assert parse_limits(None) == [parse_limit("rate_reached")]


def test_limits_against_a_step():
    step = StepResult(offered=100, duration=10, achieved=95.0, corrected_p99=150.0, queue_growth=-0.5,
                      measures={"e2e.max": 900.0})
    checks = {e: parse_limit(e).check(step) for e in
              ["p99<=150", "p99<150", "queue_growth<=-0.5", "e2e.max<1s", "e2e.max<0.9s", "rate_reached>=95%",
               "rate_reached", "service.p99<1"]}
    assert {e: c.passed for e, c in checks.items()} == {
        "p99<=150": True, "p99<150": False, "queue_growth<=-0.5": True, "e2e.max<1s": True, "e2e.max<0.9s": False,
        "rate_reached>=95%": True, "rate_reached": False, "service.p99<1": False}
    assert checks["rate_reached"].measured == pytest.approx(0.95) and checks["p99<150"].measured == 150.0
    assert checks["service.p99<1"] == LimitCheck("service.p99<1", None, False, "not measured: the step has no service.p99")
    nothing = parse_limit("rate_reached").check(StepResult(offered=0, duration=10, achieved=0))
    assert nothing == LimitCheck("rate_reached", None, False, "nothing was offered")


def test_a_check_round_trips_through_its_dict():
    one = LimitCheck("p99<1s", 12.5, True)
    assert one.to_dict() == {"expression": "p99<1s", "measured": 12.5, "passed": True, "error": None}
    assert LimitCheck.from_dict(one.to_dict()) == one
    assert LimitCheck.from_dict({"expression": "x<1", "passed": 0}) == LimitCheck("x<1", None, False, None)
