"""Limits (SLOs) of a capacity search: parsed from text, judged against one step.

    p99<200ms            corrected p99: in the open model a bare pNN is latency from the intended time
    service.p99<50ms     latency from the actual send; also corrected.pNN, e2e.pNN, lag.pNN
    error_ratio<0.1%     failed / all messages (a fraction or a percentage)
    queue_growth<=0      the server's queue (Postfix probe), messages/s
    rate_reached         the generator sent at least 99% of the offered rate (rate_reached>=95% states another bound)
    e2e.lost==0          any other measure a step carries, by name, against a number

Percentiles and their time units are read by ``loadkit.thresholds.parse``
(the grammar of ``--check``), so ``p(99)<=0.2s`` means what it means there.
A limit whose measure a step lacks fails, saying so: never a silent pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loadkit.capacity._step import StepResult
from loadkit.errors import LoadkitError
from loadkit.open_model import RATE_REACHED_BOUND
from loadkit.thresholds import OPERATORS, ThresholdError
from loadkit.thresholds import parse as parse_threshold

EXAMPLES = "e.g. p99<200ms, error_ratio<0.1%, queue_growth<=0, e2e.p99<500ms, rate_reached"
RATE_REACHED = "rate_reached"
_LIMIT = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*?)"
    r"(?:\.(?P<percentile>p\(?[0-9.]+\)?))?\s*"
    r"(?:(?P<op><=|>=|==|<|>)\s*(?P<value>[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>[A-Za-zµ%/]*))?$"
)
_BARE_PERCENTILE = re.compile(r"^p\(?[0-9.]+\)?$")


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


def _from_threshold(expression: str, text: str) -> tuple[str, float, str]:
    """(op, value, unit) of `text` read by the --check grammar, its errors told as this limit's."""
    try:
        threshold = parse_threshold(text)
    except ThresholdError as error:
        reason = str(error).split(": ", 1)[-1].replace("fail_ratio", "error_ratio")
        raise LimitError(f"limit {expression!r}: {reason}") from None
    return threshold.op, threshold.limit, threshold.unit


def parse_limit(expression) -> Limit:
    """A Limit from text, or LimitError with one line saying what is wrong."""
    text = "".join(str(expression).split())
    bare_percentile = _BARE_PERCENTILE.match(re.split(r"[<>=]", text, maxsplit=1)[0])
    match = _LIMIT.match("corrected." + text if bare_percentile else text)
    if not text or match is None:
        raise LimitError(f"cannot read limit {expression!r}: {EXAMPLES}")
    name, percentile, op, value, unit = (match[group] for group in ("name", "percentile", "op", "value", "unit"))
    if percentile is not None:
        if op is None:
            raise LimitError(f"limit {expression!r}: no comparison; {EXAMPLES}")
        op, limit, unit = _from_threshold(expression, f"{percentile}{op}{value}{unit or ''}")
        level = percentile.strip("p()")
        return Limit(text, f"{name}.p{float(level):g}", op, limit, unit)
    if name == RATE_REACHED:
        if op is None:
            return Limit(text, RATE_REACHED, ">=", RATE_REACHED_BOUND)
        if op != ">=" or unit not in ("", "%"):
            raise LimitError(f"limit {expression!r}: rate_reached takes a bound as rate_reached>=95% (or >=0.95)")
        bound = float(value) / 100 if unit == "%" else float(value)
        if not 0 < bound <= 1:
            raise LimitError(f"limit {expression!r}: the bound of rate_reached is above 0 and at most 100%")
        return Limit(text, RATE_REACHED, ">=", bound)
    if op is None:
        raise LimitError(f"limit {expression!r}: no comparison; {EXAMPLES}")
    if name == "error_ratio":
        op, limit, unit = _from_threshold(expression, f"fail_ratio{op}{value}{unit or ''}")
        return Limit(text, "error_ratio", op, limit)
    if name == "queue_growth" and unit not in ("", "/s"):
        raise LimitError(f"limit {expression!r}: queue_growth is in messages per second (a plain number)")
    if name != "queue_growth" and unit:
        raise LimitError(f"limit {expression!r}: unknown unit {unit!r} for {name}")
    return Limit(text, name, op, float(value), "/s" if name == "queue_growth" else "")


def parse_limits(expressions, rate_reached: bool = True) -> list[Limit]:
    """Every limit; with `rate_reached`, the generator's own check is added when not given."""
    limits = [one if isinstance(one, Limit) else parse_limit(one) for one in expressions or ()]
    if rate_reached and not any(limit.measure == RATE_REACHED for limit in limits):
        limits.append(Limit(RATE_REACHED, RATE_REACHED, ">=", RATE_REACHED_BOUND))
    return limits
