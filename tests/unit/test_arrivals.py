"""Arrivals: rate plans, the exact schedule, Poisson gaps, and the split among workers."""

from __future__ import annotations

import math
import random
from itertools import islice, pairwise

import pytest

from loadkit.arrivals import (
    ArrivalError,
    GlobalArrivals,
    RatePlan,
    Stage,
    WorkerArrivals,
    parse_rate_plan,
    parse_timespan,
)
from loadkit.errors import LoadkitError


def take_until(arrivals, end: float) -> list[tuple[int, float]]:
    """The arrivals before `end`, leaving the next one untaken."""
    taken = []
    while (upcoming := arrivals.peek()) is not None and upcoming[1] < end:
        taken.append(next(arrivals))
    return taken


# -- parsing -------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("20", 20.0), ("20s", 20.0), ("3m", 180.0), ("2h", 7200.0), ("1h30m", 5400.0), ("1h2m3s", 3723.0), ("0s", 0.0),
])
def test_parse_timespan(text, seconds):
    assert parse_timespan(text) == seconds


def test_constant_plan():
    plan = parse_rate_plan("200")
    assert plan.is_constant and plan.duration == math.inf and plan.total == math.inf
    assert plan.rate_at(0) == plan.rate_at(3600) == 200
    assert plan.arrivals_by(10) == pytest.approx(2000)


def test_fractional_constant_plan():
    assert parse_rate_plan("0.5").arrivals_by(10) == pytest.approx(5)


def test_stages_ramp_linearly_and_the_first_ramps_from_zero():
    plan = parse_rate_plan("50:30s,200:2m")
    assert plan.stages == (Stage(50, 30), Stage(200, 120))
    assert plan.duration == 150
    assert [plan.rate_at(t) for t in (0, 15, 30, 90, 149.999)] == pytest.approx([0, 25, 50, 125, 200], abs=0.01)
    assert plan.rate_at(150) == 0  # the plan is over
    assert plan.arrivals_by(30) == pytest.approx(750)  # 0 -> 50 over 30 s
    assert plan.arrivals_by(150) == plan.total == pytest.approx(750 + 125 * 120)


def test_a_fixed_rate_for_a_step():
    plan = RatePlan.constant(250, 30)
    assert plan.rate_at(0) == 250 and plan.duration == 30
    assert len(list(GlobalArrivals(plan))) == 7500
    assert RatePlan.constant(250).is_constant


def test_only_an_even_schedule_jumps():
    with pytest.raises(ArrivalError, match="only an even schedule"):
        GlobalArrivals(parse_rate_plan("10"), "poisson", seed=1).go_to(5)


def test_a_zero_length_stage_jumps():
    plan = parse_rate_plan("200:0s,200:1m,0:0s,0:10s,100:10s")
    assert plan.rate_at(0) == 200
    assert plan.arrivals_by(60) == pytest.approx(12_000)
    assert plan.arrivals_by(70) == pytest.approx(12_000)  # ten seconds at 0/s
    assert plan.total == pytest.approx(12_000 + 500)


@pytest.mark.parametrize("text, complaint", [
    ("", "empty rate plan"),
    ("fast", "not a rate"),
    ("-5", "not a rate"),
    ("0", "above 0"),
    ("50:", "no duration"),
    ("50:3x", "no duration"),
    ("50:30s,abc:1m", "not a rate"),
    ("50:30s,200", "needs RATE:DURATION"),
    ("0:10s", "starts no message"),
])
def test_bad_plans_say_what_is_wrong_in_one_line(text, complaint):
    with pytest.raises(ArrivalError) as caught:
        parse_rate_plan(text)
    assert isinstance(caught.value, LoadkitError)
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


def test_bad_timespan():
    with pytest.raises(ArrivalError, match="cannot read duration"):
        parse_timespan("1.5m")


# -- the schedule --------------------------------------------------------


def test_even_arrivals_at_a_constant_rate_are_evenly_spaced():
    arrivals = list(islice(GlobalArrivals(parse_rate_plan("200")), 2000))
    assert len(arrivals) == 2000
    assert [k for k, _ in arrivals] == list(range(2000))
    assert all(t == pytest.approx(k / 200) for k, t in arrivals)


def test_even_arrivals_invert_the_cumulative_count_exactly_on_a_ramp():
    plan = parse_rate_plan("50:30s,200:2m,10:20s")
    arrivals = list(GlobalArrivals(plan))
    assert len(arrivals) == math.ceil(plan.total)
    for k, t in arrivals[::97]:
        assert plan.arrivals_by(t) == pytest.approx(k, abs=1e-6)
    assert [t for _, t in arrivals] == sorted(t for _, t in arrivals)
    # arrivals per stage match the area under the rate
    assert sum(1 for _, t in arrivals if t < 30) == 750
    assert sum(1 for _, t in arrivals if 30 <= t < 150) == 15_000
    assert arrivals[-1][1] < plan.duration


def test_a_ramp_down_to_zero_is_solved_too():
    plan = RatePlan((Stage(100, 0), Stage(0, 10)))
    arrivals = list(GlobalArrivals(plan))
    assert len(arrivals) == 500
    for k, t in arrivals[::50]:
        assert plan.arrivals_by(t) == pytest.approx(k, abs=1e-6)


def ks_statistic_exponential(gaps: list[float], rate: float) -> float:
    """Kolmogorov-Smirnov D of `gaps` against Exp(rate)."""
    ordered = sorted(gaps)
    n = len(ordered)
    worst = 0.0
    for i, gap in enumerate(ordered):
        expected = 1 - math.exp(-rate * gap)
        worst = max(worst, abs(expected - i / n), abs((i + 1) / n - expected))
    return worst


def test_poisson_gaps_fit_an_exponential():
    rate = 200.0
    times = [t for _, t in islice(GlobalArrivals(parse_rate_plan("200"), "poisson", seed=7), 10_001)]
    gaps = [b - a for a, b in pairwise(times)]
    d = ks_statistic_exponential(gaps, rate)
    assert d < 1.63 / math.sqrt(len(gaps))  # KS critical value at alpha = 0.01
    assert sum(gaps) / len(gaps) == pytest.approx(1 / rate, rel=0.03)
    assert ks_statistic_exponential(gaps, rate * 1.1) > 1.63 / math.sqrt(len(gaps))  # the test can fail


def test_poisson_is_reproducible_with_a_seed():
    plan = parse_rate_plan("100")
    first = list(islice(GlobalArrivals(plan, "poisson", seed=3), 500))
    again = list(islice(GlobalArrivals(plan, "poisson", seed=3), 500))
    other = list(islice(GlobalArrivals(plan, "poisson", seed=4), 500))
    assert first == again and first != other


def test_poisson_on_a_ramp_follows_the_rate():
    plan = parse_rate_plan("100:20s,1000:20s")
    times = [t for _, t in GlobalArrivals(plan, "poisson", seed=11)]
    for start, end in ((0, 10), (10, 20), (20, 30), (30, 40)):
        expected = plan.arrivals_by(end) - plan.arrivals_by(start)
        got = sum(1 for t in times if start <= t < end)
        assert abs(got - expected) < 4 * math.sqrt(expected)


def test_unknown_spacing():
    with pytest.raises(ArrivalError, match="even or poisson"):
        GlobalArrivals(parse_rate_plan("10"), "burst")


# -- workers -------------------------------------------------------------


@pytest.mark.parametrize("arrival", ["even", "poisson"])
def test_workers_share_the_global_sequence_exactly(arrival):
    plan = parse_rate_plan("300:0s,300:10s")
    everything = list(GlobalArrivals(plan, arrival, seed=5))
    shares = [list(WorkerArrivals(plan, arrival, seed=5, index=i, count=3)) for i in range(3)]
    assert sorted(a for share in shares for a in share) == everything
    for i, share in enumerate(shares):
        assert all(k % 3 == i for k, _ in share)
        assert abs(len(share) - len(everything) / 3) <= 1
    if arrival == "even":  # each worker evenly spaced at 3/300 s, offset by i/300 s
        for i, share in enumerate(shares):
            assert all(t == pytest.approx((3 * j + i) / 300) for j, (_, t) in enumerate(share))


def test_a_lost_worker_is_taken_over_at_once():
    plan = parse_rate_plan("100:0s,100:10s")
    survivor = WorkerArrivals(plan, index=0, count=2)
    lost = WorkerArrivals(plan, index=1, count=2)
    before = take_until(survivor, 4.0)  # the survivor has taken arrivals up to 4 s
    lost_sent = take_until(lost, 5.0)  # the other one sent until 5 s, then died
    survivor.resplit(0, 1, 5.0)
    after = list(survivor)
    # before 5 s the survivor keeps the even half; from 5 s on it takes every arrival
    assert [k for k, t in after if t < 5.0] == list(range(400, 500, 2))
    assert [k for k, t in after if t >= 5.0] == list(range(500, 1000))
    assert sorted(k for k, _ in before + after + lost_sent) == list(range(1000))  # none twice, none missing
    assert survivor.index == 0 and survivor.count == 1


def test_a_joining_worker_takes_half_from_its_start():
    plan = parse_rate_plan("100:0s,100:10s")
    first = WorkerArrivals(plan)
    early = take_until(first, 2.0)
    first.resplit(0, 2, 5.0)
    joined = WorkerArrivals(plan, index=1, count=2, from_time=5.0)
    rest, theirs = list(first), list(joined)
    assert [k for k, _ in theirs] == list(range(501, 1000, 2))
    assert sorted(k for k, _ in early + rest + theirs) == list(range(1000))
    assert all(k % 2 == 0 for k, t in rest if t >= 5.0)


def test_a_worker_joining_an_hour_in_starts_at_once():
    plan = parse_rate_plan("1000")
    joined = WorkerArrivals(plan, index=2, count=3, from_time=3600.0)
    assert [next(joined) for _ in range(3)] == [(3_600_002, pytest.approx(3600.002)),
                                                (3_600_005, pytest.approx(3600.005)),
                                                (3_600_008, pytest.approx(3600.008))]


def test_peek_does_not_take_and_a_resplit_changes_what_is_next():
    plan = parse_rate_plan("10")
    worker = WorkerArrivals(plan, index=1, count=2)
    assert worker.peek() == (1, 0.1)
    assert worker.peek() == (1, 0.1)
    worker.resplit(0, 1, 0.0)  # from now on every arrival: the next is the one passed over... but never a taken one
    assert next(worker) == (0, 0.0)
    assert next(worker) == (1, 0.1)


def test_a_resplit_never_gives_back_an_arrival_already_taken():
    plan = parse_rate_plan("10")
    worker = WorkerArrivals(plan, index=0, count=2)
    assert [next(worker) for _ in range(3)] == [(0, 0.0), (2, 0.2), (4, 0.4)]
    worker.resplit(0, 1, 0.0)  # a late resplit applies after the last arrival taken
    assert [next(worker) for _ in range(3)] == [(5, 0.5), (6, 0.6), (7, 0.7)]


@pytest.mark.parametrize("arrival", ["even", "poisson"])
def test_many_resplits_stay_consistent(arrival):
    plan = parse_rate_plan("1000:0s,1000:5s")
    everything = [k for k, _ in GlobalArrivals(plan, arrival, seed=2)]
    rng = random.Random(1)
    workers = {0: WorkerArrivals(plan, arrival, seed=2, index=0, count=1)}
    taken: list[int] = []
    now = 0.0
    while now < 5.0:
        # every worker takes what is due before `now`, then membership changes from `now` on
        for worker in workers.values():
            taken.extend(k for k, _ in take_until(worker, now))
        change_at = now
        count = rng.randint(1, 4)
        survivors = list(workers.values())[:count]
        workers = dict(enumerate(survivors))
        for i in range(len(survivors), count):
            workers[i] = WorkerArrivals(plan, arrival, seed=2, index=i, count=count, from_time=change_at)
        for i, worker in enumerate(survivors):
            worker.resplit(i, count, change_at)
        now += 0.25
    for worker in workers.values():
        taken.extend(k for k, _ in worker)
    assert sorted(taken) == everything


def test_bad_split():
    with pytest.raises(ArrivalError, match="index"):
        WorkerArrivals(parse_rate_plan("10"), index=2, count=2)
    with pytest.raises(ArrivalError, match="index"):
        WorkerArrivals(parse_rate_plan("10")).resplit(0, 0, 1.0)
