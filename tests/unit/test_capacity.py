"""The capacity search against simulated servers whose ceiling is known; limits; capacity.json; the table."""

from __future__ import annotations

import heapq
import json
import math
import re

import pytest

from loadkit import capacity
from loadkit.arrivals import WorkerArrivals, parse_rate_plan
from loadkit.capacity import (
    CAPACITY,
    EXIT_NOT_MET,
    GENERATOR_LIMITED,
    MAX_RATE_HELD,
    NO_RATE_HELD,
    NOT_CONFIRMED,
    CapacityFileError,
    LimitError,
    SearchError,
    SearchSettings,
    StepResult,
    format_steps,
    format_verdict,
    parse_limit,
    parse_limits,
    read_capacity,
    search,
    write_capacity,
)
from loadkit.errors import LoadkitError


def nearest_rank(ordered: list[float], level: float) -> float:
    return ordered[max(math.ceil(level / 100 * len(ordered)) - 1, 0)]


class SimulatedServer:
    """`sessions` messages at once, `service` seconds each, FIFO queue: its ceiling is sessions / service.

    Arrivals are Poisson (seeded); a generator that cannot send above `generator_max`/s sends that and
    reports its CPU saturated. `degrade_after`: a step this long or longer sees `degraded_service`.
    """

    def __init__(self, sessions=20, service=0.05, generator_max=math.inf, degrade_after=math.inf,
                 degraded_service=None):
        self.sessions = sessions
        self.service = service
        self.generator_max = generator_max
        self.degrade_after = degrade_after
        self.degraded_service = degraded_service
        self.calls: list[tuple[float, float]] = []

    @property
    def ceiling(self) -> float:
        return self.sessions / self.service

    def __call__(self, rate: float, duration: float) -> StepResult:
        self.calls.append((rate, duration))
        service = self.degraded_service if duration >= self.degrade_after else self.service
        share = min(self.generator_max / rate, 1.0)  # the generator starts this share of the arrivals
        arrivals = WorkerArrivals(parse_rate_plan(f"{rate}"), "poisson", seed=len(self.calls))
        free = [0.0] * self.sessions
        corrected, queued_at_end, offered, sent = [], 0, 0, 0
        for k, intended in arrivals:
            if intended >= duration:
                break
            offered += 1
            if math.floor((k + 1) * share) == math.floor(k * share):
                continue
            sent += 1
            start = max(intended, heapq.heappop(free))
            done = start + service
            heapq.heappush(free, done)
            if start >= duration:
                queued_at_end += 1
            corrected.append((done - intended) * 1000)
        corrected.sort()
        return StepResult(
            offered=offered / duration, duration=duration, achieved=sent / duration, accepted=sent / duration,
            corrected_p50=nearest_rank(corrected, 50), corrected_p95=nearest_rank(corrected, 95),
            corrected_p99=nearest_rank(corrected, 99),
            service_p50=service * 1000, service_p95=service * 1000, service_p99=service * 1000,
            error_ratio=0.0, queue_growth=queued_at_end / duration,
            generator_cpu=min(rate / self.generator_max, 1.0) * 100, generator_saturated=rate > self.generator_max,
        )


FAST = SearchSettings(start=10, step_duration=30, confirm=120)


def test_the_search_finds_the_ceiling_within_ten_percent_in_few_steps():
    server = SimulatedServer(sessions=20, service=0.05)  # 400/s
    result = search(server, ["p99<200ms", "error_ratio<0.1%"], FAST)
    verdict = result.verdict
    assert verdict.status == CAPACITY
    assert abs(verdict.capacity - server.ceiling) / server.ceiling <= 0.10
    assert verdict.capacity <= server.ceiling  # never above what the server can do
    assert verdict.failed_at > verdict.capacity and "p99<200ms" in verdict.broken
    assert len(result.steps) <= 15
    phases = [step.phase for step in result.steps]
    assert phases[0] == "ramp" and "bisect" in phases and phases[-1] == "hold"
    assert result.steps[-1].duration == 120 and result.steps[-1].held
    assert [step.rate for step in result.steps[:6]] == [10, 20, 40, 80, 160, 320]
    assert result.exit_code() == 0 and result.exit_code(expect=0.9 * server.ceiling) == 0
    assert result.exit_code(expect=server.ceiling * 1.2) == EXIT_NOT_MET


def test_queue_growth_alone_finds_the_ceiling_too():
    server = SimulatedServer(sessions=8, service=0.01)  # 800/s
    # Poisson arrivals leave a few messages queued at any instant near the ceiling: allow 1/s of growth
    result = search(server, ["queue_growth<=1"], SearchSettings(start=50, factor=1.5))
    assert result.verdict.status == CAPACITY
    assert abs(result.verdict.capacity - 800) / 800 <= 0.10
    assert result.verdict.broken == ["queue_growth<=1"]


def test_additive_steps():
    server = SimulatedServer(sessions=10, service=0.02)  # 500/s
    result = search(server, ["p99<100ms"], SearchSettings(start=100, step=100))
    assert [step.rate for step in result.steps[:5]] == [100, 200, 300, 400, 500]
    assert abs(result.verdict.capacity - 500) / 500 <= 0.10


def test_a_start_rate_that_already_fails_is_bisected_down():
    server = SimulatedServer(sessions=20, service=0.05)
    result = search(server, ["p99<200ms"], SearchSettings(start=1000))
    assert result.steps[0].rate == 1000 and not result.steps[0].held
    assert result.verdict.status == CAPACITY
    assert abs(result.verdict.capacity - 400) / 400 <= 0.10


def test_a_generator_that_cannot_keep_up_is_never_taken_for_the_server():
    server = SimulatedServer(sessions=20, service=0.05, generator_max=250)  # the server could do 400/s
    result = search(server, ["p99<200ms"], FAST)
    verdict = result.verdict
    assert verdict.status == GENERATOR_LIMITED and verdict.capacity is None
    assert verdict.highest_held == 160 and result.steps[-1].rate == 320 and result.steps[-1].generator_limited
    assert re.search(r"the generator sent 2[45]\d(\.\d+)?/s of 3[12]\d(\.\d+)?/s offered at 100% CPU", verdict.reason)
    assert result.exit_code() == EXIT_NOT_MET
    assert format_verdict(result).startswith("generator-limited: ")


def test_a_busy_generator_that_still_sends_the_rate_is_not_generator_limited():
    server = SimulatedServer(sessions=20, service=0.05)
    calls = []

    def run_step(rate, duration):
        result = server(rate, duration)
        result.generator_saturated = True  # CPU at 100 %, yet the rate was sent
        calls.append(rate)
        return result

    result = search(run_step, ["p99<200ms"], FAST)
    assert result.verdict.status == CAPACITY


def test_a_failed_hold_steps_down_and_holds_again():
    # short steps see 400/s; a two-minute hold sees 20 sessions of 62.5 ms: 320/s
    server = SimulatedServer(sessions=20, service=0.05, degrade_after=120, degraded_service=0.0625)
    result = search(server, ["p99<200ms"], SearchSettings(start=10, max_holds=8))
    holds = [step for step in result.steps if step.phase == "hold"]
    assert len(holds) >= 2 and not holds[0].held and holds[-1].held
    assert all(not hold.held for hold in holds[:-1])
    assert [hold.rate for hold in holds] == pytest.approx([holds[0].rate * 0.95 ** i for i in range(len(holds))])
    assert result.verdict.status == CAPACITY and result.verdict.capacity <= 320
    assert result.verdict.failed_at == holds[-2].rate


def test_holds_that_all_fail_confirm_nothing():
    server = SimulatedServer(sessions=20, service=0.05, degrade_after=120, degraded_service=1.0)  # 20/s when held
    result = search(server, ["p99<200ms"], SearchSettings(start=100, max_holds=2))
    assert result.verdict.status == NOT_CONFIRMED and result.verdict.capacity is None
    assert result.exit_code() == EXIT_NOT_MET


def test_max_rate_held_says_the_ceiling_is_above():
    server = SimulatedServer(sessions=20, service=0.05)
    result = search(server, ["p99<200ms"], SearchSettings(start=50, max_rate=200))
    assert [step.rate for step in result.steps] == [50, 100, 200, 200]
    assert result.verdict.status == MAX_RATE_HELD and result.verdict.capacity == 200


def test_a_limit_never_measured_fails_every_step_and_says_why():
    server = SimulatedServer()
    result = search(server, ["e2e.p99<500ms"], SearchSettings(start=100, max_steps=12))
    assert result.verdict.status == NO_RATE_HELD and result.verdict.capacity is None
    assert result.verdict.broken == ["e2e.p99<500ms"]
    assert len(result.steps) <= 12
    assert "e2e.p99<500ms: not measured: the step has no e2e.p99" in format_steps(result)


def test_measures_a_step_carries_are_judged_by_name():
    def run_step(rate, duration):
        return StepResult(offered=rate, duration=duration, achieved=rate,
                          measures={"e2e.p99": 20 + max(rate - 300, 0) * 10, "e2e.lost": 0})

    result = search(run_step, ["e2e.p99<500ms", "e2e.lost==0"], SearchSettings(start=100))
    assert result.verdict.status == CAPACITY
    assert 320 <= result.verdict.capacity <= 348  # e2e.p99 passes 500 ms at 348/s


def test_the_step_budget_is_kept():
    calls = []  # a server that never fails

    def run_step(rate, duration):
        calls.append(rate)
        return StepResult(offered=rate, duration=duration, achieved=rate, corrected_p99=1.0)

    result = search(run_step, ["p99<200ms"], SearchSettings(start=1, max_steps=5))
    assert len(calls) == 5 and result.verdict.status == "out-of-steps"
    assert result.exit_code() == EXIT_NOT_MET


def test_a_step_must_return_a_step_result():
    with pytest.raises(SearchError, match="not a StepResult"):
        search(lambda rate, duration: {"offered": rate}, ["p99<1s"])


@pytest.mark.parametrize("settings, complaint", [
    ({"start": 0}, "start rate"),
    ({"factor": 1.0}, "factor"),
    ({"step": -5}, "step"),
    ({"precision": 1.5}, "shares"),
    ({"confirm": 0}, "durations"),
    ({"start": 100, "max_rate": 50}, "below the start rate"),
])
def test_bad_settings(settings, complaint):
    with pytest.raises(SearchError, match=complaint) as caught:
        SearchSettings(**settings)
    assert isinstance(caught.value, LoadkitError)


# -- limits --------------------------------------------------------------


@pytest.mark.parametrize("expression, measure, op, value", [
    ("p99<200ms", "corrected.p99", "<", 200.0),
    ("p99.9 < 1s", "corrected.p99.9", "<", 1000.0),
    ("p(95)<=0.25s", "corrected.p95", "<=", 250.0),
    ("corrected.p50<10", "corrected.p50", "<", 10.0),
    ("service.p99<50ms", "service.p99", "<", 50.0),
    ("e2e.p99<500ms", "e2e.p99", "<", 500.0),
    ("lag.p99<1s", "lag.p99", "<", 1000.0),
    ("error_ratio<0.1%", "error_ratio", "<", 0.001),
    ("error_ratio<=0.01", "error_ratio", "<=", 0.01),
    ("queue_growth<=0", "queue_growth", "<=", 0.0),
    ("queue_growth<5/s", "queue_growth", "<", 5.0),
    ("rate_reached", "rate_reached", ">=", 0.99),
    ("rate_reached>=95%", "rate_reached", ">=", 0.95),
    ("e2e.lost==0", "e2e.lost", "==", 0.0),
    ("apache.busy_workers<150", "apache.busy_workers", "<", 150.0),
])
def test_parse_limit(expression, measure, op, value):
    limit = parse_limit(expression)
    assert (limit.measure, limit.op) == (measure, op)
    assert limit.value == pytest.approx(value)


@pytest.mark.parametrize("expression, complaint", [
    ("", "cannot read limit"),
    ("p99", "no comparison"),
    ("p99<3xs", "unknown time unit"),
    ("p0<1s", "percentile must be above 0"),
    ("error_ratio<2", "error_ratio is at most 1"),
    ("rate_reached<3", "rate_reached takes a bound"),
    ("rate_reached>=0%", "above 0"),
    ("queue_growth<=0ms", "messages per second"),
    ("e2e.lost==0ms", "is a count"),
    ("<5", "cannot read limit"),
])
def test_bad_limits_say_what_is_wrong_in_one_line(expression, complaint):
    with pytest.raises(LimitError) as caught:
        parse_limit(expression)
    assert isinstance(caught.value, LoadkitError)
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


def test_rate_reached_is_always_a_limit():
    assert [limit.expression for limit in parse_limits(["p99<1s"])] == ["p99<1s", "rate_reached"]
    assert [limit.expression for limit in parse_limits(["rate_reached>=90%"])] == ["rate_reached>=90%"]


def test_limit_checks():
    step = StepResult(offered=100, duration=10, achieved=98.5, corrected_p99=150.0, service_p99=20.0,
                      error_ratio=0.0005, queue_growth=0.0)
    results = {e: parse_limit(e).check(step) for e in
               ["p99<200ms", "p99<100ms", "service.p99<10ms", "error_ratio<0.1%", "queue_growth<=0",
                "rate_reached", "rate_reached>=98%", "e2e.p99<1s"]}
    assert {e: c.passed for e, c in results.items()} == {
        "p99<200ms": True, "p99<100ms": False, "service.p99<10ms": False, "error_ratio<0.1%": True,
        "queue_growth<=0": True, "rate_reached": False, "rate_reached>=98%": True, "e2e.p99<1s": False}
    assert results["rate_reached"].measured == pytest.approx(0.985)
    assert results["e2e.p99<1s"].measured is None and "not measured" in results["e2e.p99<1s"].error


# -- capacity.json and the table -----------------------------------------


def test_capacity_json_round_trip(tmp_path):
    server = SimulatedServer()
    result = search(server, ["p99<200ms", "queue_growth<=0"], FAST)
    path = write_capacity(result, tmp_path)
    assert path == tmp_path / "capacity.json"
    data = json.loads(path.read_text())
    assert data["format"] == "loadkit-capacity" and data["version"] == 1
    assert data["verdict"]["status"] == CAPACITY and data["verdict"]["capacity"] == result.verdict.capacity
    assert data["steps"][0]["rate"] == 10 and data["steps"][0]["limits"][0]["expression"] == "p99<200ms"
    again = read_capacity(path)
    assert again.verdict == result.verdict and again.settings == result.settings and again.limits == result.limits
    assert [(s.phase, s.rate, s.held, s.result, s.checks) for s in again.steps] == \
           [(s.phase, s.rate, s.held, s.result, s.checks) for s in result.steps]
    assert read_capacity(tmp_path).verdict == result.verdict


@pytest.mark.parametrize("content, complaint", [
    ("{", "is not JSON"),
    ('{"format": "other"}', "not a loadkit-capacity document"),
    ('{"format": "loadkit-capacity", "version": 9}', "version 9"),
    ('{"format": "loadkit-capacity", "version": 1, "settings": {}}', "missing 'steps'"),
])
def test_a_bad_capacity_file_is_one_clear_line(tmp_path, content, complaint):
    path = tmp_path / "capacity.json"
    path.write_text(content)
    with pytest.raises(CapacityFileError) as caught:
        read_capacity(path)
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_capacity_file(tmp_path):
    with pytest.raises(CapacityFileError, match="cannot read"):
        read_capacity(tmp_path / "nothing.json")


def test_the_step_table_and_the_verdict():
    server = SimulatedServer()
    result = search(server, ["p99<200ms", "queue_growth<=0"], FAST)
    table = format_steps(result).splitlines()
    assert table[0].split()[:5] == ["step", "phase", "rate/s", "offered/s", "achieved/s"]
    assert table[0].endswith("p99<200ms  queue_growth<=0  rate_reached")
    assert len(table) == 1 + len(result.steps)
    assert table[1].split()[-3:] == ["✓", "✓", "✓"]
    assert any("✗" in line for line in table)
    assert format_verdict(result).startswith(f"capacity: {result.verdict.capacity:g} messages/s")


def test_exported_errors():
    for name in ("LimitError", "SearchError", "CapacityFileError"):
        assert name in capacity.__all__ and issubclass(getattr(capacity, name), LoadkitError)
    assert all(hasattr(capacity, name) for name in capacity.__all__)
