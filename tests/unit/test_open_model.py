"""The open-model dispatcher on a simulated clock: exact counts for each policy, the three times of a message."""

from __future__ import annotations

import heapq

import pytest

from loadkit.arrivals import WorkerArrivals, parse_rate_plan
from loadkit.errors import LoadkitError
from loadkit.open_model import OpenModelDispatcher, OpenModelError, RateCounter, rate_reached


def simulate(dispatcher: OpenModelDispatcher, service_time, until: float):
    """Drive `dispatcher` like a runner with a perfect clock: tick at each arrival and each end, until `until`."""
    outcomes, ending, order = [], [], 0  # ending: heap of (done, order, arrival)
    max_in_flight = 0
    while True:
        due = dispatcher.next_due()
        candidates = [t for t in (due, ending[0][0] if ending else None) if t is not None]
        if not candidates or min(candidates) >= until:
            break
        now = min(candidates)
        while ending and ending[0][0] <= now:
            _, _, arrival = heapq.heappop(ending)
            outcomes.append(dispatcher.on_done(arrival, now))
        for arrival in dispatcher.on_tick(now):
            order += 1
            heapq.heappush(ending, (now + service_time(arrival), order, arrival))
        max_in_flight = max(max_in_flight, dispatcher.in_flight)
    dispatcher.stop()
    return outcomes, max_in_flight


def dispatcher_for(plan: str, **options) -> OpenModelDispatcher:
    return OpenModelDispatcher(WorkerArrivals(parse_rate_plan(plan)), **options)


def test_without_a_cap_every_arrival_starts_at_its_intended_time():
    dispatcher = dispatcher_for("100:0s,100:5s")
    outcomes, _ = simulate(dispatcher, lambda arrival: 0.3, until=10)
    counts = dispatcher.counts
    assert (counts.offered, counts.started, counts.dropped, counts.done, counts.unsent) == (500, 500, 0, 500, 0)
    assert all(o.lag == 0 and o.service == pytest.approx(0.3) and o.corrected == pytest.approx(0.3) for o in outcomes)
    assert counts.worst_lateness == 0
    assert [row.offered for row in counts.rows()[:5]] == [100] * 5


def test_slots_are_reused_and_never_more_than_the_cap():
    dispatcher = dispatcher_for("10:0s,10:10s", max_sessions=3, policy="queue")
    outcomes, max_in_flight = simulate(dispatcher, lambda arrival: 0.25, until=20)
    assert max_in_flight == 3
    assert {o.slot for o in outcomes} == {0, 1, 2}


def test_drop_counts_each_arrival_that_finds_no_free_session():
    # 10/s, 2 sessions of 0.25 s each: arrivals 0 and 1 start, 2 finds both busy (until 0.25 and 0.35), 3 and 4
    # start again, ...: every arrival k with k % 3 == 2 is dropped
    dispatcher = dispatcher_for("10:0s,10:10s", max_sessions=2, policy="drop")
    outcomes, max_in_flight = simulate(dispatcher, lambda arrival: 0.25, until=20)
    counts = dispatcher.counts
    assert (counts.offered, counts.started, counts.dropped) == (100, 67, 33)
    assert sorted(o.k for o in outcomes) == [k for k in range(100) if k % 3 != 2]
    expected = [sum(1 for k in range(10 * s, 10 * s + 10) if k % 3 == 2) for s in range(10)]
    assert [row.dropped for row in counts.rows()[:10]] == expected
    assert max_in_flight == 2
    assert all(o.lag == 0 for o in outcomes)  # a dropped arrival never waits, a started one never did
    assert not rate_reached(counts.offered, counts.started)


def test_queue_lets_lag_grow_linearly_and_counts_it_in_the_corrected_latency():
    # 10/s offered, 8/s served: arrival k starts at about k/8 s, lag k/40 s, a slope of 0.25 s per second
    dispatcher = dispatcher_for("10:0s,10:10s", max_sessions=2, policy="queue")
    outcomes, _ = simulate(dispatcher, lambda arrival: 0.25, until=100)
    counts = dispatcher.counts
    assert (counts.offered, counts.started, counts.dropped, counts.unsent) == (100, 100, 0, 0)
    for o in outcomes:
        assert o.corrected == pytest.approx(o.lag + o.service)
        assert o.service == pytest.approx(0.25)
    late = [o for o in outcomes if o.intended >= 1]
    slope = (late[-1].lag - late[0].lag) / (late[-1].intended - late[0].intended)
    assert slope == pytest.approx(0.25, abs=0.02)
    assert max(o.lag for o in outcomes) == pytest.approx(99 / 40, abs=0.15)


def test_arrivals_still_waiting_at_the_stop_are_counted_unsent():
    dispatcher = dispatcher_for("10:0s,10:10s", max_sessions=1, policy="queue")
    simulate(dispatcher, lambda arrival: 0.5, until=5)  # serves 2/s out of 10/s
    counts = dispatcher.counts
    assert counts.offered == 50 and counts.started == 10
    assert counts.unsent == 40 and dispatcher.queued == 0
    assert dispatcher.on_tick(6.0) == [] and dispatcher.next_due() is None


def test_a_late_tick_starts_everything_due_with_its_lag():
    dispatcher = dispatcher_for("100")
    started = dispatcher.on_tick(0.095)
    assert [a.k for a in started] == list(range(10))
    assert all(a.sent == 0.095 for a in started)
    assert dispatcher.counts.worst_lateness == pytest.approx(0.095)
    outcome = dispatcher.on_done(started[3], 0.1)
    assert outcome.lag == pytest.approx(0.065) and outcome.service == pytest.approx(0.005)
    assert outcome.corrected == pytest.approx(0.07)


def test_queued_arrivals_start_before_new_ones_in_order():
    dispatcher = OpenModelDispatcher([(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3)], max_sessions=1, policy="queue")
    first = dispatcher.on_tick(0.25)
    assert [a.k for a in first] == [0] and dispatcher.queued == 2
    dispatcher.on_done(first[0], 0.26)
    second = dispatcher.on_tick(0.3)
    assert [a.k for a in second] == [1] and dispatcher.queued == 2  # 2 and 3 wait behind 1
    assert not dispatcher.finished


def test_rate_counter_fills_silent_seconds():
    counter = RateCounter()
    counter.count_offered(0.5)
    counter.count_offered(3.2)
    assert [(row.second, row.offered) for row in counter.rows()] == [(0, 1), (1, 0), (2, 0), (3, 1)]


def test_rate_reached_bound():
    assert rate_reached(1000, 990) and not rate_reached(1000, 989)
    assert rate_reached(1000, 950, bound=0.95)


@pytest.mark.parametrize("options, complaint", [
    ({"policy": "block"}, "queue or drop"),
    ({"max_sessions": 0}, "at least 1"),
])
def test_bad_settings(options, complaint):
    with pytest.raises(OpenModelError, match=complaint) as caught:
        dispatcher_for("10", **options)
    assert isinstance(caught.value, LoadkitError)
