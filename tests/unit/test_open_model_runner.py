"""The gevent open-model runner against gevent work functions (sleep d): rate held, a stall shown, drops, lag."""

from __future__ import annotations

import math
import time

import gevent
import pytest
from gevent.event import Event

from loadkit.arrivals import WorkerArrivals, parse_rate_plan
from loadkit.loop_clock import call_later
from loadkit.open_model_runner import OpenModelRunner, run


def percentile(values: list[float], level: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(level / 100 * len(ordered)) - 1, 0)]


def sleeper(seconds: float):
    def work(arrival):
        gevent.sleep(seconds)
    return work


def loop_lag_probe(period: float = 0.005):
    """A greenlet that sleeps `period` over and over and keeps how late each wake-up came: the loop's own lag,
    which every message's start shares on a busy machine. Kill it to stop it."""
    late: list[float] = []

    def probe():
        while True:
            due = time.perf_counter() + period
            gevent.sleep(period)
            late.append(time.perf_counter() - due)

    return gevent.spawn(probe), late


def test_the_runner_holds_500_per_second():
    rate, sessions = 500, 100
    outcomes = []
    probe, loop_lag = loop_lag_probe()
    try:
        summary = run(sleeper(0.001), WorkerArrivals(parse_rate_plan(str(rate))), max_sessions=sessions,
                      policy="drop", duration=3.0, on_outcome=outcomes.append)
    finally:
        probe.kill()
    assert summary.offered == 1500  # arrivals intended in [0, 3 s)
    assert summary.started + summary.dropped == summary.offered
    assert len(outcomes) == summary.started and summary.unfinished == 0
    # Only a stall of the loop itself longer than the sessions cover (sessions / rate = 0.2 s) can drop
    # arrivals: those due in the rest of it. The probe measured every stall of this run.
    stalled_away = sum(max(0.0, late - sessions / rate) for late in loop_lag) * rate
    assert summary.dropped <= stalled_away + 0.02 * summary.offered, (summary.dropped, stalled_away)
    assert abs(summary.achieved_rate - rate) <= 0.02 * rate + stalled_away / summary.elapsed, (
        summary.achieved_rate, stalled_away)
    assert percentile([o.lag for o in outcomes], 50) < percentile(loop_lag, 50) + 0.005, (
        percentile([o.lag for o in outcomes], 50), percentile(loop_lag, 50))


def test_a_stall_shows_in_the_corrected_latency_only():
    # one session, 200/s, 1 ms per message, except one message that takes 2 s (the server stalls once)
    def work(arrival):
        gevent.sleep(2.0 if arrival.k == 200 else 0.001)

    outcomes = []
    summary = run(work, WorkerArrivals(parse_rate_plan("200")), max_sessions=1, policy="queue",
                  duration=5.0, on_outcome=outcomes.append)
    assert summary.offered == 1000
    assert summary.started + summary.unsent == summary.offered
    corrected = [o.corrected for o in outcomes]
    service = [o.service for o in outcomes]
    assert percentile(corrected, 99) >= 1.5
    assert percentile(service, 99) < 0.05  # the work time, give or take the scheduler
    assert max(service) >= 2.0  # the one stalled message


def session_cycle(outcomes) -> float:
    """The mean time from one message's start to the next on the same session: how long a session really
    took per message (its 100 ms sleep and what a busy machine added to it)."""
    starts: dict[int, list[float]] = {}
    for outcome in sorted(outcomes, key=lambda o: o.sent):
        starts.setdefault(outcome.slot, []).append(outcome.sent)
    cycles = [b - a for times in starts.values() for a, b in zip(times, times[1:])]
    return sum(cycles) / len(cycles)


def test_drop_mode_against_a_cap_counts_drops_per_second():
    # 4 sessions of 100 ms serve at most 40/s; 100/s are offered
    outcomes = []
    probe, loop_lag = loop_lag_probe()
    try:
        summary = run(sleeper(0.1), WorkerArrivals(parse_rate_plan("100")), max_sessions=4, policy="drop",
                      duration=3.0, on_outcome=outcomes.append)
    finally:
        probe.kill()
    assert summary.offered == 300
    assert summary.started + summary.dropped == 300 and summary.unsent == 0
    # about 40/s: as many as the sessions served at the pace they really kept (a little over 100 ms each,
    # more on a busy machine); every other arrival dropped
    served_per_second = 4 / session_cycle(outcomes)
    assert abs(summary.started - 3 * served_per_second) <= 0.1 * 3 * served_per_second, (
        summary.started, served_per_second)
    rows = summary.counts.rows()
    assert [row.offered for row in rows[:3]] == [100, 100, 100]
    assert all(abs(row.dropped - (100 - served_per_second)) <= 10 for row in rows[:3]), (
        [row.dropped for row in rows[:3]], served_per_second)
    # a started message never waited for a session: its lag is the loop's own (as the probe saw it), not the
    # 100 ms or more a session takes to free
    assert loop_lag and percentile([o.lag for o in outcomes], 95) < percentile(loop_lag, 99) + 0.02, (
        percentile([o.lag for o in outcomes], 95), percentile(loop_lag, 99))
    assert not summary.rate_reached()


def test_queue_mode_lag_grows_linearly():
    # 4 sessions of 100 ms serve 40/s; 80/s offered: arrival k starts at k/40 s, its lag is k/80 s = its intended
    # time (slope 1). On a busy machine a session takes `cycle` > 100 ms a message: arrival k starts at
    # k * cycle / 4 s, so the lag's slope is 80 * cycle / 4 - 1, from the cycle this run measured.
    outcomes = []
    summary = run(sleeper(0.1), WorkerArrivals(parse_rate_plan("80")), max_sessions=4, policy="queue",
                  duration=3.0, on_outcome=outcomes.append)
    assert summary.offered == 240 and summary.dropped == 0
    assert summary.started + summary.unsent == 240
    points = [(o.intended, o.lag) for o in outcomes if o.intended >= 0.2]
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    residual = sum((y - mean_y - slope * (x - mean_x)) ** 2 for x, y in points)
    total = sum((y - mean_y) ** 2 for _, y in points)
    cycle = session_cycle(outcomes)
    assert cycle >= 0.099, cycle  # the sleep holds each session, and a session is never shared
    assert slope == pytest.approx(80 * cycle / 4 - 1, abs=0.2), (slope, cycle)
    assert 1 - residual / total > 0.95  # linear


def test_a_failing_message_is_an_outcome_not_the_runners_failure():
    def work(arrival):
        if arrival.k % 10 == 0:
            raise OSError("connection refused")

    outcomes = []
    summary = run(work, WorkerArrivals(parse_rate_plan("100")), duration=1.0, on_outcome=outcomes.append)
    assert summary.offered == summary.started == 100
    assert summary.errors == 10
    assert sorted(o.k for o in outcomes if o.error is not None) == list(range(0, 100, 10))


def test_the_stop_event_ends_the_run_and_in_flight_messages_finish():
    stop = Event()
    fired = []

    def stop_now():
        fired.append(time.perf_counter())  # the runner's clock
        stop.set()

    call_later(0.5, stop_now)
    outcomes = []
    runner = OpenModelRunner(sleeper(0.2), WorkerArrivals(parse_rate_plan("100")), on_outcome=outcomes.append)
    started = time.perf_counter()
    summary = runner.run(stop, origin=started)
    # The runner sees the stop at its next look (every `poll` at most), and not before it came: judged from
    # when the stop really fired, since gevent's timer is not what this tests.
    stopped_at = fired[0] - started
    assert stopped_at <= summary.elapsed <= stopped_at + OpenModelRunner.poll, (summary.elapsed, stopped_at)
    assert summary.offered <= 100 * summary.elapsed + 1  # 100 a second, the first at 0
    assert len(outcomes) == summary.started == summary.offered
    # every arrival due before the runner's last look, in order, none after the stop
    assert sorted(o.k for o in outcomes) == list(range(summary.offered))
    assert max(o.intended for o in outcomes) <= summary.elapsed


def test_a_staged_plan_ends_by_itself():
    summary = run(sleeper(0.001), WorkerArrivals(parse_rate_plan("100:0s,100:1s")))
    assert summary.offered == summary.started == 100
    assert summary.elapsed == 1.0 and summary.achieved_rate == 100.0


def test_a_resplit_takes_the_lost_workers_share_at_once():
    plan = parse_rate_plan("200")
    runner = OpenModelRunner(sleeper(0.001), WorkerArrivals(plan, index=0, count=2))
    call_later(1.0, runner.resplit, 0, 1, 1.0)
    summary = runner.run(duration=3.0)
    rows = summary.counts.rows()
    assert rows[0].offered == 100  # half of 200/s
    assert rows[1].offered >= 190 and rows[2].offered == 200  # the whole rate from 1 s on
