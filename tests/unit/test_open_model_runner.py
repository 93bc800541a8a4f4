"""The gevent open-model runner against gevent work functions (sleep d): rate held, a stall shown, drops, lag."""

from __future__ import annotations

import math
import time

import gevent
import pytest
from gevent.event import Event

from loadkit.arrivals import WorkerArrivals, parse_rate_plan
from loadkit.open_model_runner import OpenModelRunner, run


def percentile(values: list[float], level: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(level / 100 * len(ordered)) - 1, 0)]


def sleeper(seconds: float):
    def work(arrival):
        gevent.sleep(seconds)
    return work


def test_the_runner_holds_500_per_second():
    outcomes = []
    summary = run(sleeper(0.001), WorkerArrivals(parse_rate_plan("500")), max_sessions=100, policy="drop",
                  duration=3.0, on_outcome=outcomes.append)
    assert summary.offered == 1500  # arrivals intended in [0, 3 s)
    assert summary.started + summary.dropped == summary.offered
    assert len(outcomes) == summary.started and summary.unfinished == 0
    assert abs(summary.achieved_rate - 500) / 500 < 0.02
    assert summary.rate_reached()
    assert percentile([o.lag for o in outcomes], 50) < 0.005


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


def test_drop_mode_against_a_cap_counts_drops_per_second():
    # 4 sessions of 100 ms serve at most 40/s; 100/s are offered
    outcomes = []
    summary = run(sleeper(0.1), WorkerArrivals(parse_rate_plan("100")), max_sessions=4, policy="drop",
                  duration=3.0, on_outcome=outcomes.append)
    assert summary.offered == 300
    assert summary.started + summary.dropped == 300 and summary.unsent == 0
    assert 100 <= summary.started <= 130  # about 40/s
    rows = summary.counts.rows()
    assert [row.offered for row in rows[:3]] == [100, 100, 100]
    assert all(55 <= row.dropped <= 75 for row in rows[:3])
    assert percentile([o.lag for o in outcomes], 95) < 0.02  # a started message never waited for a session
    assert not summary.rate_reached()


def test_queue_mode_lag_grows_linearly():
    # 4 sessions of 100 ms serve 40/s; 80/s offered: arrival k starts at k/40 s, its lag is k/80 s = its intended time
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
    assert slope == pytest.approx(1.0, abs=0.2)
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

    gevent.spawn_later(0.5, stop_now)
    outcomes = []
    started = time.perf_counter()
    summary = run(sleeper(0.2), WorkerArrivals(parse_rate_plan("100")), stop_event=stop, on_outcome=outcomes.append)
    # the stop comes at 0.5 s or later on a busy machine; the runner sees it at its next look (every `poll`)
    assert 0.45 <= summary.elapsed <= fired[0] - started + OpenModelRunner.poll
    assert 45 <= summary.offered <= 100 * summary.elapsed + 1  # 100 a second, the first at 0
    assert len(outcomes) == summary.started == summary.offered


def test_a_staged_plan_ends_by_itself():
    summary = run(sleeper(0.001), WorkerArrivals(parse_rate_plan("100:0s,100:1s")))
    assert summary.offered == summary.started == 100
    assert summary.elapsed == 1.0 and summary.achieved_rate == 100.0


def test_a_resplit_takes_the_lost_workers_share_at_once():
    plan = parse_rate_plan("200")
    runner = OpenModelRunner(sleeper(0.001), WorkerArrivals(plan, index=0, count=2))
    gevent.spawn_later(1.0, runner.resplit, 0, 1, 1.0)
    summary = runner.run(duration=3.0)
    rows = summary.counts.rows()
    assert rows[0].offered == 100  # half of 200/s
    assert rows[1].offered >= 190 and rows[2].offered == 200  # the whole rate from 1 s on
