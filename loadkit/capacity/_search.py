"""The capacity search: step up, bisect, hold; a pure function of `run_step(rate, duration) -> StepResult`.

1. ramp    from `start`, multiply the rate by `factor` (or add `step`) after
           each step that held, until one fails (or `max_rate` holds);
2. bisect  between the last rate that held and the first that failed, until
           they are within `precision` of each other;
3. hold    the highest rate that held, for `confirm` seconds; if the hold
           fails, step down by `step_down` and hold again (`max_holds` times).

A step holds when every limit holds; ``rate_reached`` is always among the
limits, so a rate the generator did not send never passes. A step whose
achieved rate falls short while the generator's CPU was saturated ends the
search at once as generator-limited: the server was not what failed, so no
capacity is claimed. Steps are short and fixed-rate; their number is
bounded by `max_steps` (a search that runs out of them says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadkit.capacity._limits import RATE_REACHED, Limit, LimitCheck, parse_limits
from loadkit.capacity._step import StepResult
from loadkit.errors import LoadkitError

CAPACITY = "capacity"  # confirmed by a hold
MAX_RATE_HELD = "max-rate-held"  # every rate up to max_rate held: the ceiling is above it
GENERATOR_LIMITED = "generator-limited"
NO_RATE_HELD = "no-rate-held"
NOT_CONFIRMED = "not-confirmed"  # rates held in short steps, but no hold confirmed one
OUT_OF_STEPS = "out-of-steps"
STATUSES = (CAPACITY, MAX_RATE_HELD, GENERATOR_LIMITED, NO_RATE_HELD, NOT_CONFIRMED, OUT_OF_STEPS)
EXIT_NOT_MET = 3


class SearchError(LoadkitError):
    """Search settings that cannot be used; the message is one line."""


@dataclass
class SearchSettings:
    """How the search steps; rates in messages/s, durations in seconds."""

    start: float = 10.0
    factor: float = 2.0
    """Multiply the rate by this after each ramp step that held (unless `step` is set)."""
    step: float | None = None
    """Add this to the rate after each ramp step that held, instead of multiplying."""
    step_duration: float = 30.0
    confirm: float = 120.0
    precision: float = 0.05
    """Bisect until the rates that held and failed are within this share of each other."""
    step_down: float = 0.05
    """A failed hold retries this share lower."""
    max_rate: float | None = None
    max_steps: int = 30
    max_holds: int = 3

    def __post_init__(self):
        if not self.start > 0:
            raise SearchError(f"the start rate must be above 0, not {self.start:g}")
        if self.step is None and not self.factor > 1:
            raise SearchError(f"the ramp factor must be above 1, not {self.factor:g}")
        if self.step is not None and not self.step > 0:
            raise SearchError(f"the ramp step must be above 0, not {self.step:g}")
        if not 0 < self.precision < 1 or not 0 < self.step_down < 1:
            raise SearchError("precision and step down are shares between 0 and 1 (e.g. 0.05)")
        if not self.step_duration > 0 or not self.confirm > 0:
            raise SearchError("step and confirm durations must be above 0 seconds")
        if self.max_rate is not None and self.max_rate < self.start:
            raise SearchError(f"the highest rate {self.max_rate:g} is below the start rate {self.start:g}")
        if self.max_steps < 1 or self.max_holds < 1:
            raise SearchError("max steps and max holds must be at least 1")

    def next_rate(self, rate: float) -> float:
        rate = rate + self.step if self.step is not None else rate * self.factor
        return min(rate, self.max_rate) if self.max_rate is not None else rate


@dataclass
class Step:
    """One step of the search: its phase, what it measured, each limit's check."""

    phase: str  # ramp, bisect, hold
    rate: float
    duration: float
    result: StepResult
    checks: list[LimitCheck]
    generator_limited: bool = False

    @property
    def held(self) -> bool:
        return not self.generator_limited and all(check.passed for check in self.checks)

    @property
    def broken(self) -> list[str]:
        return [check.expression for check in self.checks if not check.passed]


@dataclass
class Verdict:
    """The answer: the capacity (confirmed by a hold) or why there is none."""

    status: str
    capacity: float | None = None  # the highest offered rate at which every limit held, confirmed
    highest_held: float | None = None  # the highest rate that held in any step
    failed_at: float | None = None  # the lowest rate that failed
    broken: list[str] = field(default_factory=list)  # the limits that broke at failed_at
    reason: str = ""


@dataclass
class CapacityResult:
    """A whole search: its settings, limits, steps and verdict (what capacity.json holds)."""

    settings: SearchSettings
    limits: list[str]
    steps: list[Step]
    verdict: Verdict

    def exit_code(self, expect: float | None = None) -> int:
        """0 when a capacity was confirmed (at least `expect`), else EXIT_NOT_MET."""
        verdict = self.verdict
        if verdict.status not in (CAPACITY, MAX_RATE_HELD):
            return EXIT_NOT_MET
        return EXIT_NOT_MET if expect is not None and verdict.capacity < expect else 0


def _is_generator_limited(result: StepResult, limits: list[Limit]) -> bool:
    bound = next(limit.value for limit in limits if limit.measure == RATE_REACHED)
    return bool(result.generator_saturated) and result.achieved < bound * result.offered


class _Search:
    def __init__(self, run_step, limits: list[Limit], settings: SearchSettings):
        self.run_step = run_step
        self.limits = limits
        self.settings = settings
        self.steps: list[Step] = []
        self.held: float | None = None  # highest rate that held
        self.failed: Step | None = None  # the lowest failing step

    def attempt(self, phase: str, rate: float, duration: float) -> Step:
        result = self.run_step(rate, duration)
        if not isinstance(result, StepResult):
            raise SearchError(f"a step returned {type(result).__name__}, not a StepResult")
        step = Step(phase, rate, duration, result, [limit.check(result) for limit in self.limits],
                    _is_generator_limited(result, self.limits))
        self.steps.append(step)
        if step.held:
            self.held = rate if self.held is None else max(self.held, rate)
        elif not step.generator_limited and (self.failed is None or rate <= self.failed.rate):
            self.failed = step
        return step

    @property
    def out_of_steps(self) -> bool:
        return len(self.steps) >= self.settings.max_steps

    def verdict(self, status: str, capacity: float | None = None, reason: str = "") -> Verdict:
        failed = self.failed
        return Verdict(status, capacity, self.held, failed.rate if failed else None,
                       failed.broken if failed else [], reason)

    def generator_limited(self, step: Step) -> Verdict:
        result = step.result
        cpu = "" if result.generator_cpu is None else f" at {result.generator_cpu:.0f}% CPU"
        at_least = f"; {self.held:g}/s held before it" if self.held is not None else ""
        return self.verdict(GENERATOR_LIMITED, None,
                            f"the generator sent {result.achieved:.4g}/s of {result.offered:.4g}/s offered{cpu}: "
                            f"it, not the server, was the limit{at_least}")

    def run(self) -> Verdict:
        settings = self.settings
        # 1. ramp
        low, high, rate = None, None, settings.start
        while True:
            step = self.attempt("ramp", rate, settings.step_duration)
            if step.generator_limited:
                return self.generator_limited(step)
            if not step.held:
                high = rate
                break
            low = rate
            if settings.max_rate is not None and rate >= settings.max_rate:
                break
            if self.out_of_steps:
                return self.verdict(OUT_OF_STEPS, None, f"{len(self.steps)} steps, the rate still rising")
            rate = settings.next_rate(rate)
        # 2. bisect (from 0 when the start rate already failed)
        if high is not None:
            floor = low or 0.0
            while high - floor > settings.precision * high and not self.out_of_steps:
                rate = (floor + high) / 2
                step = self.attempt("bisect", rate, settings.step_duration)
                if step.generator_limited:
                    return self.generator_limited(step)
                if step.held:
                    floor = low = rate
                else:
                    high = rate
        if low is None:
            broken = ", ".join(self.failed.broken) if self.failed else "?"
            return self.verdict(NO_RATE_HELD, None, f"no rate down to {high:g}/s held ({broken})")
        # 3. hold
        candidate = low
        for _ in range(settings.max_holds):
            step = self.attempt("hold", candidate, settings.confirm)
            if step.generator_limited:
                return self.generator_limited(step)
            if step.held:
                if high is None:
                    return self.verdict(MAX_RATE_HELD, candidate,
                                        f"every rate up to the highest asked, {candidate:g}/s, held")
                broken = ", ".join(self.failed.broken)
                return self.verdict(CAPACITY, candidate,
                                    f"{candidate:g}/s held for {settings.confirm:g} s; "
                                    f"{self.failed.rate:g}/s broke {broken}")
            high, last_tried = candidate, candidate
            candidate *= 1 - settings.step_down
        return self.verdict(NOT_CONFIRMED, None, f"{settings.max_holds} holds failed, down to {last_tried:g}/s")


def search(run_step, limits, settings: SearchSettings | None = None) -> CapacityResult:
    """Find the highest rate at which every limit holds; `run_step(rate, duration)` returns a StepResult.

    `limits` are texts (``p99<200ms``) or parsed Limits; ``rate_reached`` is
    added when missing.
    """
    settings = settings or SearchSettings()
    parsed = parse_limits(limits)
    runner = _Search(run_step, parsed, settings)
    verdict = runner.run()
    return CapacityResult(settings, [limit.expression for limit in parsed], runner.steps, verdict)
