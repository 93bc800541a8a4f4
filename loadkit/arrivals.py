"""Open-model arrivals: rate plans, their schedule, and its split among workers.

A rate plan says how many messages per second to start:

    200                 200/s for the whole run
    50:30s,200:2m       stages, k6's ramping-arrival-rate: each stage ramps
                        linearly from the previous stage's target to its own
                        over its duration; the first stage ramps from 0 (k6's
                        default startRate), so 50:30s is a 30 s warm-up.
    200:0s,200:1m       a stage of 0 s jumps: 200/s at once, held for a minute

Durations are Locust's timespans (20, 20s, 3m, 2h, 1h30m; a bare number is
seconds). A staged plan ends with its last stage; a constant one never does.

The schedule is exact: Λ(t), the arrivals expected by t, is piecewise
quadratic, and arrival k (from 0) is at Λ⁻¹(k) for ``even`` spacing, or at
Λ⁻¹(E0+...+Ek) for ``poisson``, Ek seeded Exp(1) gaps (one seed, one
schedule, on every worker).

Workers share one global sequence: worker i of n takes the arrivals k with
k % n == i, so the sum of all workers stays evenly spaced. ``resplit`` moves
a worker to a new (i, n) from a point in time on, when a worker joins or is
lost; the global sequence goes on, so the survivors take the whole rate at
once. Nothing here imports Locust or gevent.
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from dataclasses import dataclass

from loadkit.errors import LoadkitError

__all__ = [
    "ARRIVALS",
    "ArrivalError",
    "GlobalArrivals",
    "RatePlan",
    "Stage",
    "WorkerArrivals",
    "parse_rate_plan",
    "parse_timespan",
]

ARRIVALS = ("even", "poisson")
_TIMESPAN = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_RATE = re.compile(r"^\d+(?:\.\d+)?$|^\.\d+$")
EXAMPLES = "e.g. 200, or 50:30s,200:2m"


class ArrivalError(LoadkitError):
    """A rate plan, a timespan or an arrival setting that cannot be used; the message is one line."""


def parse_timespan(text: str) -> float:
    """Seconds in a Locust-style timespan: 20, 20s, 3m, 2h, 1h30m, 0s."""
    value = str(text).strip()
    if value.isdigit():
        return float(value)
    match = _TIMESPAN.match(value)
    if not value or match is None or not any(match.groupdict().values()):
        raise ArrivalError(f"cannot read duration {text!r}: expected e.g. 30s, 2m, 1h30m")
    hours, minutes, seconds = (int(match[name] or 0) for name in ("h", "m", "s"))
    return float(hours * 3600 + minutes * 60 + seconds)


def _parse_rate(text: str, plan: str) -> float:
    value = text.strip()
    if not _RATE.match(value):
        raise ArrivalError(f"rate plan {plan!r}: {text!r} is not a rate in messages per second ({EXAMPLES})")
    return float(value)


@dataclass(frozen=True)
class Stage:
    """Ramp linearly to `target` messages/s over `duration` seconds."""

    target: float
    duration: float


class _Segment:
    """One linear piece of the plan: rate r0 -> r1 from `start` over `duration`; `before` arrivals precede it."""

    __slots__ = ("before", "count", "duration", "r0", "slope", "start")

    def __init__(self, start: float, duration: float, r0: float, r1: float, before: float):
        self.start = start
        self.duration = duration
        self.r0 = r0
        self.slope = (r1 - r0) / duration if duration and math.isfinite(duration) else 0.0
        self.before = before
        self.count = math.inf if math.isinf(duration) else (r0 + r1) / 2 * duration

    def arrivals_by(self, t: float) -> float:
        u = min(max(t - self.start, 0.0), self.duration)
        return self.before + self.r0 * u + self.slope * u * u / 2

    def time_of(self, x: float) -> float:
        """Λ⁻¹(x) within this piece: the root of slope/2 u² + r0 u = y, in a form stable for any slope."""
        y = x - self.before
        if y <= 0:
            return self.start
        root = math.sqrt(max(self.r0 * self.r0 + 2 * self.slope * y, 0.0))
        return self.start + min(2 * y / (self.r0 + root), self.duration)


@dataclass(frozen=True)
class RatePlan:
    """Stages of a run's arrival rate (messages/s); a constant plan is one endless stage."""

    stages: tuple[Stage, ...]
    text: str = ""

    def __post_init__(self):
        if not self.stages:
            raise ArrivalError("a rate plan needs at least one stage")
        segments, start, rate, before = [], 0.0, self._start_rate(), 0.0
        for stage in self.stages:
            if stage.target < 0 or stage.duration < 0 or math.isnan(stage.target) or math.isnan(stage.duration):
                raise ArrivalError(f"rate plan {self.text or self.stages!r}: rates and durations cannot be negative")
            if stage.duration > 0:
                segment = _Segment(start, stage.duration, rate, stage.target, before)
                segments.append(segment)
                before += segment.count
                start += stage.duration
            rate = stage.target
        object.__setattr__(self, "_segments", tuple(segments))
        object.__setattr__(self, "_total", before)
        object.__setattr__(self, "_duration", start)

    def _start_rate(self) -> float:
        # A constant plan starts at its rate; stages ramp from 0, as k6 does by default.
        return self.stages[0].target if self.is_constant else 0.0

    @classmethod
    def constant(cls, rate: float, duration: float = math.inf) -> RatePlan:
        """`rate`/s from the first moment, for `duration` seconds (a capacity step) or for ever."""
        if math.isinf(duration):
            return cls((Stage(float(rate), math.inf),), f"{rate:g}")
        return cls((Stage(float(rate), 0.0), Stage(float(rate), float(duration))), f"{rate:g}:0s,{rate:g}:{duration:g}s")

    @property
    def is_constant(self) -> bool:
        return len(self.stages) == 1 and math.isinf(self.stages[0].duration)

    @property
    def duration(self) -> float:
        """Seconds until the plan ends (inf for a constant plan)."""
        return self._duration

    @property
    def total(self) -> float:
        """Λ at the end of the plan: the arrivals it offers in all (inf for a constant plan)."""
        return self._total

    def rate_at(self, t: float) -> float:
        for segment in self._segments:
            if t < segment.start + segment.duration:
                return segment.r0 + segment.slope * max(t - segment.start, 0.0)
        return 0.0

    def arrivals_by(self, t: float) -> float:
        """Λ(t): the arrivals the plan expects in [0, t]."""
        if t <= 0:
            return 0.0
        for segment in self._segments:
            if t <= segment.start + segment.duration:
                return segment.arrivals_by(t)
        return self._total

    def time_of(self, x: float, hint: int = 0) -> tuple[float | None, int]:
        """(Λ⁻¹(x), segment index) or (None, ...) past the plan's end; `hint` skips earlier segments."""
        segments = self._segments
        for index in range(hint, len(segments)):
            segment = segments[index]
            if x < segment.before + segment.count:
                return segment.time_of(x), index
        return None, len(segments)

    def __str__(self) -> str:
        return self.text or ",".join(f"{s.target:g}:{s.duration:g}s" for s in self.stages)


def parse_rate_plan(text) -> RatePlan:
    """A RatePlan from `200` or `50:30s,200:2m`; ArrivalError with one line otherwise."""
    plan = str(text).strip()
    if not plan:
        raise ArrivalError(f"empty rate plan ({EXAMPLES})")
    parts = [part.strip() for part in plan.split(",")]
    if len(parts) == 1 and ":" not in parts[0]:
        rate = _parse_rate(parts[0], plan)
        if rate <= 0:
            raise ArrivalError(f"rate plan {plan!r}: a constant rate must be above 0")
        return RatePlan((Stage(rate, math.inf),), plan)
    stages = []
    for part in parts:
        target, colon, duration = part.partition(":")
        if not colon:
            raise ArrivalError(f"rate plan {plan!r}: stage {part!r} needs RATE:DURATION ({EXAMPLES})")
        try:
            seconds = parse_timespan(duration)
        except ArrivalError:
            raise ArrivalError(f"rate plan {plan!r}: stage {part!r} has no duration like 30s, 2m, 1h30m") from None
        stages.append(Stage(_parse_rate(target, plan), seconds))
    result = RatePlan(tuple(stages), plan)
    if result.total <= 0:
        raise ArrivalError(f"rate plan {plan!r} starts no message at all")
    return result


class GlobalArrivals:
    """The whole run's arrivals in order: an iterator of (k, intended seconds since the plan's start)."""

    def __init__(self, plan: RatePlan, arrival: str = "even", seed: int | None = None):
        if arrival not in ARRIVALS:
            raise ArrivalError(f"unknown arrival spacing {arrival!r}: even or poisson")
        self.plan = plan
        self.arrival = arrival
        self.seed = seed
        self._gap = random.Random(seed).expovariate if arrival == "poisson" else None
        self._k = 0
        self._x = 0.0
        self._segment = 0

    @property
    def next_k(self) -> int:
        return self._k

    def go_to(self, k: int) -> None:
        """Go on from arrival `k`, ahead or back (even spacing only: a Poisson arrival depends on every gap)."""
        if self._gap is not None:
            raise ArrivalError("only an even schedule can jump to an arrival")
        if k < self._k:
            self._segment = 0
        self._k = k

    def __iter__(self):
        return self

    def __next__(self) -> tuple[int, float]:
        self._x = self._x + self._gap(1.0) if self._gap else float(self._k)
        t, self._segment = self.plan.time_of(self._x, self._segment)
        if t is None:
            raise StopIteration
        k = self._k
        self._k += 1
        return k, t


class _Split:
    __slots__ = ("count", "from_k", "from_time", "index")

    def __init__(self, index: int, count: int, from_k: int, from_time: float):
        self.index, self.count, self.from_k, self.from_time = index, count, from_k, from_time


def _check_split(index: int, count: int) -> None:
    if count < 1 or not 0 <= index < count:
        raise ArrivalError(f"worker {index} of {count}: the index must be in 0..count-1 and count at least 1")


class WorkerArrivals:
    """One worker's share of the global arrivals: yields (k, intended) for k % count == index.

    Every worker builds it from the same plan, spacing and seed; one that joins
    a running test passes `from_time`, the time its share begins. ``peek()``
    shows the next arrival without taking it, so a runner can wait for it and
    a resplit still changes it; ``next()`` takes it.
    """

    def __init__(self, plan: RatePlan, arrival: str = "even", seed: int | None = None,
                 index: int = 0, count: int = 1, from_time: float = -math.inf):
        _check_split(index, count)
        self.plan = plan
        self._global = GlobalArrivals(plan, arrival, seed)
        self._walked: deque[tuple[int, float]] = deque()  # read from the global sequence, not yet taken
        self._splits = [_Split(index, count, 0, float(from_time))]  # a worker that joins late takes nothing before
        self._next_k = 0  # the first global arrival not yet taken or passed

    @property
    def index(self) -> int:
        return self._splits[-1].index

    @property
    def count(self) -> int:
        return self._splits[-1].count

    def _owns(self, k: int, t: float) -> bool:
        for split in reversed(self._splits):
            if k >= split.from_k and t >= split.from_time:
                return k % split.count == split.index
        return False

    def _find(self) -> int:
        """Position in the walked buffer of the next arrival this worker owns (walking on as needed)."""
        walked = self._walked
        for position, (k, t) in enumerate(walked):
            if self._owns(k, t):
                return position
        splits, walker = self._splits, self._global
        if len(splits) == 1 and walker.arrival == "even":
            # one split, even spacing: jump over the other workers' arrivals (a resplit walks back)
            split, k = splits[0], walker.next_k
            if split.from_time > -math.inf:  # a worker that joined late starts at its first arrival
                k = max(k, math.ceil(self.plan.arrivals_by(split.from_time) - 1e-9))
            walker.go_to(k + (split.index - k) % split.count)
        for k, t in walker:
            walked.append((k, t))
            if self._owns(k, t):
                return len(walked) - 1
        raise StopIteration

    def peek(self) -> tuple[int, float] | None:
        """The next arrival, not taken; None once the plan has ended."""
        try:
            return self._walked[self._find()]
        except StopIteration:
            return None

    def __iter__(self):
        return self

    def __next__(self) -> tuple[int, float]:
        position = self._find()
        walked = self._walked
        for _ in range(position):
            walked.popleft()
        arrival = walked.popleft()
        self._next_k = arrival[0] + 1
        if len(self._splits) > 1:
            self._forget_old_splits(*arrival)
        return arrival

    def _forget_old_splits(self, k: int, t: float) -> None:
        # Arrivals only move forward: once one falls under a split, every later one does too.
        for position in range(len(self._splits) - 1, 0, -1):
            split = self._splits[position]
            if k >= split.from_k and t >= split.from_time:
                del self._splits[:position]
                return

    def resplit(self, index: int, count: int, from_time: float) -> None:
        """Be worker `index` of `count` for the global arrivals at or after `from_time`.

        Arrivals already taken stay taken: the new split starts after the last
        one, so no arrival is sent twice by a worker. Give every worker the same
        `from_time`, at least one gap ahead of now, and their shares add up to
        the global sequence exactly.
        """
        _check_split(index, count)
        self._splits.append(_Split(index, count, self._next_k, float(from_time)))
        if self._global.arrival == "even":  # arrivals jumped over may be this worker's now
            self._walked.clear()
            self._global.go_to(self._next_k)
