"""Open-model dispatch: intended times in, decisions out, without any I/O.

``OpenModelDispatcher`` is told the time (``on_tick(now)``) and a message's
end (``on_done``); it answers which arrivals start now, on which session slot.
Times are seconds on the schedule's clock (0 = the plan's start); whoever
drives it (``loadkit.open_model_runner`` with gevent, or a test with a fake
clock) owns the clock.

With a cap of `max_sessions` busy at once, an arrival that finds no free
session follows the overload policy:

    queue   it waits, in order, for a free session; its lag (sent - intended)
            grows and counts in its corrected latency
    drop    it is dropped at once and counted in its second as dropped

Each message ends as an ``Outcome`` with three times: intended, sent, done.
corrected = done - intended (what a real arrival stream would see), service =
done - sent (what the server took), lag = sent - intended (what the generator
or the cap added). Every arrival is counted once per whole second of its
intended time as offered, and then as started (in the second it was sent) or
dropped; arrivals still queued when the run stops are counted as unsent.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from loadkit.errors import LoadkitError

__all__ = [
    "POLICIES",
    "RATE_REACHED_BOUND",
    "Arrival",
    "OpenModelDispatcher",
    "OpenModelError",
    "Outcome",
    "RateCounter",
    "SecondCounts",
    "rate_reached",
]

POLICIES = ("queue", "drop")
RATE_REACHED_BOUND = 0.99
"""The share of the offered rate a run must send to have reached it."""


class OpenModelError(LoadkitError):
    """An open-model setting that cannot be used (a cap, a policy); the message is one line."""


class Arrival:
    """One message of the schedule, from its intended time to its start on a session slot."""

    __slots__ = ("intended", "k", "sent", "slot")

    def __init__(self, k: int, intended: float):
        self.k = k
        self.intended = intended
        self.sent: float | None = None
        self.slot = -1

    def __repr__(self) -> str:
        return f"Arrival(k={self.k}, intended={self.intended:.6f}, sent={self.sent}, slot={self.slot})"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished message: its three times and, when it failed, the error."""

    k: int
    intended: float
    sent: float
    done: float
    slot: int
    error: BaseException | None = None

    @property
    def corrected(self) -> float:
        return self.done - self.intended

    @property
    def service(self) -> float:
        return self.done - self.sent

    @property
    def lag(self) -> float:
        return self.sent - self.intended


@dataclass(slots=True)
class SecondCounts:
    """Arrivals of one whole second: offered and dropped by intended time, started and done by their own."""

    second: int
    offered: int = 0
    started: int = 0
    dropped: int = 0
    done: int = 0


@dataclass
class RateCounter:
    """Running counts per whole second, and in all, of offered, started, dropped, done, unsent."""

    seconds: dict[int, SecondCounts] = field(default_factory=dict)
    offered: int = 0
    started: int = 0
    dropped: int = 0
    done: int = 0
    unsent: int = 0
    worst_lateness: float = 0.0
    """The longest the generator took to see an arrival after its intended time (s): a stalled generator shows here."""

    def _at(self, t: float) -> SecondCounts:
        second = math.floor(t)
        counts = self.seconds.get(second)
        if counts is None:
            counts = self.seconds[second] = SecondCounts(second)
        return counts

    def count_offered(self, t: float) -> None:
        self.offered += 1
        self._at(t).offered += 1

    def count_started(self, t: float) -> None:
        self.started += 1
        self._at(t).started += 1

    def count_dropped(self, t: float) -> None:
        self.dropped += 1
        self._at(t).dropped += 1

    def count_done(self, t: float) -> None:
        self.done += 1
        self._at(t).done += 1

    def rows(self) -> list[SecondCounts]:
        """One row per second from the first to the last counted, gaps filled with zeros."""
        if not self.seconds:
            return []
        first, last = min(self.seconds), max(self.seconds)
        return [self.seconds.get(second) or SecondCounts(second) for second in range(first, last + 1)]


def rate_reached(offered: float, achieved: float, bound: float = RATE_REACHED_BOUND) -> bool:
    """True when `achieved` is at least `bound` of `offered` (counts or rates alike)."""
    return achieved >= bound * offered


class _Peekable:
    """peek()/next() over any iterator of (k, intended), for schedules that have no peek of their own."""

    def __init__(self, iterable):
        self._iterator = iter(iterable)
        self._next = None

    def peek(self):
        if self._next is None:
            self._next = next(self._iterator, None)
        return self._next

    def __next__(self):
        upcoming = self.peek()
        if upcoming is None:
            raise StopIteration
        self._next = None
        return upcoming


class OpenModelDispatcher:
    """Decides, at each tick, which arrivals start, wait or are dropped.

    `schedule` yields (k, intended) in order (``arrivals.WorkerArrivals`` or
    any iterable); `max_sessions` caps the messages in flight (None: no cap);
    `policy` is "queue" or "drop".
    """

    def __init__(self, schedule, max_sessions: int | None = None, policy: str = "queue"):
        if policy not in POLICIES:
            raise OpenModelError(f"unknown overload policy {policy!r}: queue or drop")
        if max_sessions is not None and max_sessions < 1:
            raise OpenModelError(f"max sessions must be at least 1, not {max_sessions}")
        self.schedule = schedule if hasattr(schedule, "peek") else _Peekable(schedule)
        self.max_sessions = max_sessions
        self.policy = policy
        self.counts = RateCounter()
        self._queue: deque[Arrival] = deque()
        self._free_slots: list[int] = list(range(max_sessions - 1, -1, -1)) if max_sessions else []
        self._slots_made = max_sessions or 0
        self.in_flight = 0
        self.stopped = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def has_free_session(self) -> bool:
        return self.max_sessions is None or self.in_flight < self.max_sessions

    def next_due(self) -> float | None:
        """The intended time of the next arrival not yet seen; None once the schedule is over."""
        if self.stopped:
            return None
        upcoming = self.schedule.peek()
        return None if upcoming is None else upcoming[1]

    @property
    def finished(self) -> bool:
        """Nothing left to start: the schedule is over (or stopped) and nothing waits."""
        return not self._queue and self.next_due() is None

    def _start(self, arrival: Arrival, now: float) -> Arrival:
        if self._free_slots:
            arrival.slot = self._free_slots.pop()
        else:
            arrival.slot = self._slots_made
            self._slots_made += 1
        arrival.sent = now
        self.in_flight += 1
        self.counts.count_started(now)
        return arrival

    def on_tick(self, now: float) -> list[Arrival]:
        """The arrivals to start now: waiting ones first, then every one due by `now`."""
        started = []
        queue = self._queue
        while queue and self.has_free_session:
            started.append(self._start(queue.popleft(), now))
        if self.stopped:
            return started
        schedule, counts = self.schedule, self.counts
        while (upcoming := schedule.peek()) is not None and upcoming[1] <= now:
            k, intended = next(schedule)
            counts.count_offered(intended)
            counts.worst_lateness = max(counts.worst_lateness, now - intended)
            arrival = Arrival(k, intended)
            if not queue and self.has_free_session:
                started.append(self._start(arrival, now))
            elif self.policy == "queue":
                queue.append(arrival)
            else:
                counts.count_dropped(intended)
        return started

    def on_done(self, arrival: Arrival, now: float, error: BaseException | None = None) -> Outcome:
        """`arrival` ended at `now`: its session is free again."""
        self.in_flight -= 1
        self._free_slots.append(arrival.slot)
        self.counts.count_done(now)
        return Outcome(arrival.k, arrival.intended, arrival.sent, now, arrival.slot, error)

    def stop(self) -> int:
        """Start nothing more: arrivals still waiting are counted unsent; returns how many."""
        self.stopped = True
        unsent = len(self._queue)
        self.counts.unsent += unsent
        self._queue.clear()
        return unsent
