"""The gevent side of the open model: sleep until the next intended time, run each message in a greenlet.

    summary = run(work_fn, schedule, max_sessions=50, policy="drop", stop_event=stop)

`work_fn(arrival)` sends one message (``arrival.slot`` says which session to
use, so a caller can keep one connection per slot); whatever it raises is
the message's error, never the runner's. Every decision is the
``OpenModelDispatcher``'s; this module only keeps its clock and wakes it:
at the next intended time, when a session frees while arrivals wait, and
every `poll` seconds to see `stop_event`. The per-message ``Outcome`` goes to
`on_outcome` (from the message's greenlet), where the caller records it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import gevent
from gevent.event import Event
from gevent.pool import Group

from loadkit.open_model import RATE_REACHED_BOUND, Arrival, OpenModelDispatcher, Outcome, RateCounter, rate_reached

__all__ = ["OpenModelRunner", "RunSummary", "run"]


@dataclass
class RunSummary:
    """What a run offered and did, in all and per second; times on the schedule's clock."""

    counts: RateCounter
    elapsed: float  # schedule seconds the run covered
    errors: int
    unfinished: int  # messages still in flight when the drain timed out

    @property
    def offered(self) -> int:
        return self.counts.offered

    @property
    def started(self) -> int:
        return self.counts.started

    @property
    def dropped(self) -> int:
        return self.counts.dropped

    @property
    def unsent(self) -> int:
        return self.counts.unsent

    @property
    def offered_rate(self) -> float:
        return self.counts.offered / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def achieved_rate(self) -> float:
        return self.counts.started / self.elapsed if self.elapsed > 0 else 0.0

    def rate_reached(self, bound: float = RATE_REACHED_BOUND) -> bool:
        return rate_reached(self.counts.offered, self.counts.started, bound)


class OpenModelRunner:
    """Runs one worker's schedule with gevent; `resplit` passes a new share to the schedule."""

    poll = 0.05
    """Longest sleep between looks at the stop event (seconds)."""

    def __init__(self, work_fn, schedule, max_sessions: int | None = None, policy: str = "queue",
                 on_outcome=None, clock=time.perf_counter):
        self.dispatcher = OpenModelDispatcher(schedule, max_sessions, policy)
        self.work_fn = work_fn
        self.on_outcome = on_outcome
        self.clock = clock
        self.errors = 0
        self._origin = 0.0
        self._wake = Event()
        self._group = Group()

    def now(self) -> float:
        """Seconds on the schedule's clock."""
        return self.clock() - self._origin

    def resplit(self, index: int, count: int, from_time: float) -> None:
        """This worker becomes `index` of `count` from schedule time `from_time` on (see arrivals)."""
        self.dispatcher.schedule.resplit(index, count, from_time)
        self._wake.set()

    def _work(self, arrival: Arrival) -> None:
        arrival.sent = self.now()  # when the message really starts, after the greenlet switch
        error = None
        try:
            self.work_fn(arrival)
        except gevent.GreenletExit:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed message is an outcome, not the runner's failure
            error = exc
            self.errors += 1
        dispatcher = self.dispatcher
        outcome: Outcome = dispatcher.on_done(arrival, self.now(), error)
        if dispatcher.queued:
            self._wake.set()
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def run(self, stop_event=None, duration: float | None = None, drain_timeout: float = 30.0,
            origin: float | None = None) -> RunSummary:
        """Until the schedule ends, `stop_event` is set or `duration` schedule seconds pass; then drain.

        `origin` is the clock reading at schedule time 0 (default: now), so
        workers that share a start time share one schedule clock.
        """
        self._origin = self.clock() if origin is None else origin
        dispatcher, wake, spawn = self.dispatcher, self._wake, self._group.spawn
        end = float("inf") if duration is None else duration
        while not (stop_event is not None and stop_event.is_set()):
            now = self.now()
            over = now >= end
            if over:
                now = math.nextafter(end, 0.0)  # the run offers arrivals in [0, end)
            for arrival in dispatcher.on_tick(now):
                spawn(self._work, arrival)
            if over or dispatcher.finished:
                break
            due = dispatcher.next_due()
            if dispatcher.queued and not dispatcher.has_free_session or due is None:
                timeout = self.poll  # a finishing message wakes us
            else:
                timeout = min(due, end) - self.now()
            if timeout > 0:
                wake.clear()
                wake.wait(min(timeout, self.poll))
        elapsed = min(self.now(), end)
        plan = getattr(dispatcher.schedule, "plan", None)
        if dispatcher.finished and plan is not None and plan.duration <= end:
            elapsed = plan.duration  # the plan ran out: it covered its whole duration, not up to its last arrival
        dispatcher.stop()
        self._group.join(timeout=drain_timeout)
        unfinished = len(self._group)
        if unfinished:
            self._group.kill(block=False)
        return RunSummary(dispatcher.counts, elapsed, self.errors, unfinished)


def run(work_fn, schedule, max_sessions: int | None = None, policy: str = "queue", stop_event=None, *,
        duration: float | None = None, on_outcome=None, drain_timeout: float = 30.0) -> RunSummary:
    """Run `schedule` with `work_fn` per message; see OpenModelRunner."""
    runner = OpenModelRunner(work_fn, schedule, max_sessions, policy, on_outcome)
    return runner.run(stop_event, duration, drain_timeout)
