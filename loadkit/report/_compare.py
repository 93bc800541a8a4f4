"""This run against a baseline run: what got worse.

For the total and for each request name found in both runs: throughput,
failure ratio and latency percentiles, each with its change and a flag when
it got worse by more than the tolerance below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadkit.report._run import Row, Run

LATENCY_TOLERANCE = 0.10  # a percentile more than 10% higher is worse
THROUGHPUT_TOLERANCE = 0.10  # a throughput more than 10% lower is worse
FAILURE_POINTS = 0.001  # a failure ratio 0.1 percentage point higher (or up from none) is worse
FLAGGED_LATENCIES = ("p50", "p95", "p99", "p99.9")
SHOWN_LATENCIES = (*FLAGGED_LATENCIES, "max")


@dataclass
class Change:
    label: str  # the request name, or "All requests"
    measure: str  # "throughput", "failures", "p95", ...
    baseline: float | None
    current: float | None
    worse: bool = False
    better: bool = False

    @property
    def relative(self) -> float | None:
        """current / baseline - 1, None when either is missing or the baseline is 0."""
        if not (_is_number(self.baseline) and _is_number(self.current)) or self.baseline == 0:
            return None
        return self.current / self.baseline - 1.0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _compare_rows(current: Row, baseline: Row) -> list[Change]:
    label = f"{current.label} (phase)" if current.kind == "phase" else current.label
    changes = []
    rate = Change(label, "throughput", baseline.rate, current.rate)
    if rate.relative is not None:
        rate.worse = rate.relative < -THROUGHPUT_TOLERANCE
        rate.better = rate.relative > THROUGHPUT_TOLERANCE
    changes.append(rate)
    failures = Change(label, "failures", baseline.failure_ratio, current.failure_ratio)
    if _is_number(failures.baseline) and _is_number(failures.current):
        rise = failures.current - failures.baseline
        failures.worse = rise > FAILURE_POINTS or (failures.baseline == 0 and failures.current > 0)
        failures.better = -rise > FAILURE_POINTS or (failures.current == 0 and failures.baseline > 0)
    changes.append(failures)
    for key in SHOWN_LATENCIES:
        latency = Change(label, key, baseline.latency.get(key), current.latency.get(key))
        if key in FLAGGED_LATENCIES and latency.relative is not None:
            latency.worse = latency.relative > LATENCY_TOLERANCE
            latency.better = latency.relative < -LATENCY_TOLERANCE
        if latency.baseline is not None or latency.current is not None:
            changes.append(latency)
    return changes


def compare_runs(current: Run, baseline: Run) -> list[Change]:
    """Changes of the total, then of each request name (and phase) both runs have."""
    changes = []
    if current.total is not None and baseline.total is not None:
        changes += _compare_rows(current.total, baseline.total)
    base_rows = {(row.type, row.name): row for row in baseline.requests}
    for row in current.requests:
        base = base_rows.get((row.type, row.name))
        if base is not None and (len(current.requests) > 1 or current.total is None):
            changes += _compare_rows(row, base)
    base_phases = {(row.type, row.name): row for row in baseline.phases}
    for row in current.phases:
        base = base_phases.get((row.type, row.name))
        if base is not None:
            changes += [c for c in _compare_rows(row, base) if c.measure in FLAGGED_LATENCIES]
    return changes
