"""Limits (SLOs) of a capacity search: parsed from text, judged against one step.

    p99<200ms            corrected p99: in the open model a bare pNN is latency from the intended time
    service.p99<50ms     latency from the actual send; also corrected.pNN, e2e.pNN, lag.pNN
    error_ratio<0.1%     failed / all messages (a fraction or a percentage)
    queue_growth<=0      the server's queue (Postfix probe), messages/s
    rate_reached         the generator sent at least 99% of the offered rate (rate_reached>=95% states another bound)
    e2e.lost==0          any other measure a step carries, by name, against a number

A limit is read with the grammar of ``--check`` (`loadkit.thresholds.read_comparison`
and its readers of times, percentiles, ratios and counts), so ``p(99)<=0.2s``
means what it means there, and ``e2e.*`` and ``queue_*`` are read by
``--check``'s own vocabulary. A limit whose measure a step lacks fails,
saying so: never a silent pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loadkit.capacity._step import StepResult
from loadkit.errors import LoadkitError
from loadkit.open_model import RATE_REACHED_BOUND
from loadkit.thresholds import OPERATORS, PERCENTILE_NAME, is_measure, parse_measure, read_comparison

EXAMPLES = "e.g. p99<200ms, error_ratio<0.1%, queue_growth<=0, e2e.p99<500ms, rate_reached"
RATE_REACHED = "rate_reached"
_NAME = re.compile(
    rf"^(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*?)(?:\.(?P<percentile>{PERCENTILE_NAME}))?$"
)
_BARE_PERCENTILE = re.compile(rf"^{PERCENTILE_NAME}$")


class LimitError(LoadkitError):
    """A limit that cannot be understood; the message is one line."""


@dataclass(frozen=True)
class Limit:
    """One parsed limit: `measure` (a StepResult.measure name) `op` `value` (ms for latencies)."""

    expression: str
    measure: str
    op: str
    value: float
    unit: str = ""

    def check(self, step: StepResult) -> LimitCheck:
        if self.measure == RATE_REACHED:
            if not step.offered:
                return LimitCheck(self.expression, None, False, "nothing was offered")
            reached = step.achieved / step.offered
            return LimitCheck(self.expression, reached, reached >= self.value)
        measured = step.measure(self.measure)
        if measured is None:
            return LimitCheck(self.expression, None, False, f"not measured: the step has no {self.measure}")
        return LimitCheck(self.expression, measured, OPERATORS[self.op](measured, self.value))


@dataclass(frozen=True)
class LimitCheck:
    """One limit against one step: the value measured (None when not) and whether it held."""

    expression: str
    measured: float | None
    passed: bool
    error: str | None = None

    def to_dict(self) -> dict:
        return {"expression": self.expression, "measured": self.measured, "passed": self.passed, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict) -> LimitCheck:
        return cls(data["expression"], data.get("measured"), bool(data["passed"]), data.get("error"))


def parse_limit(expression) -> Limit:
    """A Limit from text, or LimitError with one line saying what is wrong."""
    text = "".join(str(expression).split())
    comparison = read_comparison(expression, text, noun="limit", error=LimitError)
    if is_measure(comparison.name):  # e2e.*, queue_*: as --check reads them
        threshold = parse_measure(comparison, text)
        return Limit(text, threshold.metric, threshold.op, threshold.limit, threshold.unit)
    bare_percentile = _BARE_PERCENTILE.match(comparison.name)
    match = _NAME.match("corrected." + comparison.name if bare_percentile else comparison.name)
    if not text or match is None:
        comparison.unreadable(EXAMPLES)
    name, percentile = match["name"], match["percentile"]
    if percentile is not None:
        op = comparison.require_op(EXAMPLES)
        return Limit(text, f"{name}.p{comparison.percentile(percentile):g}", op, comparison.time_ms(), "ms")
    if name == RATE_REACHED:
        if comparison.op is None:
            return Limit(text, RATE_REACHED, ">=", RATE_REACHED_BOUND)
        if comparison.op != ">=" or comparison.unit not in ("", "%"):
            comparison.fail("rate_reached takes a bound as rate_reached>=95% (or >=0.95)")
        bound = comparison.ratio(RATE_REACHED)
        if bound == 0:
            comparison.fail("the bound of rate_reached is above 0 and at most 100%")
        return Limit(text, RATE_REACHED, ">=", bound)
    op = comparison.require_op(EXAMPLES)
    if name == "error_ratio":
        return Limit(text, name, op, comparison.ratio(name))
    if comparison.unit:
        comparison.fail(f"unknown unit {comparison.unit!r} for {name}")
    return Limit(text, name, op, comparison.value)


def parse_limits(expressions, rate_reached: bool = True) -> list[Limit]:
    """Every limit; with `rate_reached`, the generator's own check is added when not given."""
    limits = [one if isinstance(one, Limit) else parse_limit(one) for one in expressions or ()]
    if rate_reached and not any(limit.measure == RATE_REACHED for limit in limits):
        limits.append(Limit(RATE_REACHED, RATE_REACHED, ">=", RATE_REACHED_BOUND))
    return limits
