"""What one fixed-rate step measured: the input of every limit, one row of the step table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

PERCENTILES = (50, 95, 99)


@dataclass
class StepResult:
    """One step at a fixed rate; rates in messages/s, latencies in ms, CPU in % of one core.

    `offered` is what the schedule offered in the step (its arrivals per
    second; with Poisson spacing it differs from the rate asked by chance),
    `achieved` what the generator started: rate_reached compares the two.

    `measures` holds whatever else a step measured, by the name a limit uses:
    ``e2e.p99`` (ms), ``e2e.lost``, ``apache.busy_workers``, ``corrected.p99.9``...
    A measure the step did not take is absent, never 0.
    """

    offered: float
    duration: float
    achieved: float
    accepted: float | None = None
    delivered: float | None = None
    dropped: int = 0
    corrected_p50: float | None = None
    corrected_p95: float | None = None
    corrected_p99: float | None = None
    service_p50: float | None = None
    service_p95: float | None = None
    service_p99: float | None = None
    error_ratio: float | None = None
    errors: dict[str, int] = field(default_factory=dict)  # error class -> count
    queue_growth: float | None = None  # the server's queue, messages/s (Postfix probe)
    generator_cpu: float | None = None
    generator_saturated: bool = False  # the generator's CPU was the bottleneck
    measures: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str) -> float | None:
        """The value a limit named `name` reads, or None when the step did not measure it."""
        if name in self.measures:
            return self.measures[name]
        attribute = name.replace(".p", "_p", 1) if name.startswith(("corrected.p", "service.p")) else name
        if attribute in _NUMERIC_FIELDS:
            value = getattr(self, attribute)
            return None if value is None else float(value)
        return None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StepResult:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


_NUMERIC_FIELDS = {f.name for f in fields(StepResult)} - {"errors", "measures", "generator_saturated"}
