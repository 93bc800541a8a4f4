"""This run against a baseline run: what got worse, beyond the noise of either run.

For the total and for each request name found in both runs: throughput,
failure ratio and latency percentiles, each with its change. A change is
flagged only when it passes every test below, so two runs of the same
settings on the same machine flag nothing:

1. enough samples: both runs hold enough requests for the percentile
   (``MIN_REQUESTS``: a p99 needs 1,000) and enough intervals to measure
   their spread (``MIN_INTERVALS``);
2. an absolute floor: a latency moving less than ``LATENCY_FLOOR_MS`` (or
   than the histograms' precision) is not news, nor 0.001 -> 0.002 ms;
3. a relative tolerance: 10% for latency and throughput;
4. significance: the per-interval values of the two runs (each second's
   p95, each second's rate) differ by a Mann-Whitney U test at
   ``SIGNIFICANCE``, and the middle 80% of one run's seconds do not
   overlap the other's: the change is larger than the swings within each
   run (on a busy machine, a run's seconds can differ by a factor of ten).

A phase (connect, helo, ...) has no per-interval values in a report, so its
noise is unknown: a phase is flagged only when the message it belongs to is
flagged for the same percentile, to say where the time went, and when it
passes the tests 1 to 3 itself.

Before anything is flagged, ``settings_differences`` says whether the runs
were made the same way (users, spawn rate, duration, message size, rate):
changes between runs of other settings may come from the settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loadkit.report._run import TOTAL_LABEL, Row, Run

LATENCY_TOLERANCE = 0.10  # a percentile more than 10% higher is worse
THROUGHPUT_TOLERANCE = 0.10  # a throughput more than 10% lower is worse
FAILURE_POINTS = 0.001  # a failure ratio 0.1 percentage point higher (or up from none) is worse
LATENCY_FLOOR_MS = 1.0  # a latency change smaller than this is never flagged
PRECISION = 0.001  # the histograms keep 3 significant digits
SIGNIFICANCE = 0.01  # Mann-Whitney U, two-sided
MIN_INTERVALS = 5  # per-interval values needed in each run to know its spread
MIDDLE = (10, 90)  # percentiles of a run's per-interval values: its spread, outliers aside
MIN_FAILED = 10  # failures needed in the current run before a rise from none is news
FLAGGED_LATENCIES = ("p50", "p95", "p99")
SHOWN_LATENCIES = ("p50", "p95", "p99", "p99.9", "max")
# Requests a percentile needs in each run: about ten beyond it.
MIN_REQUESTS = {"p50": 20, "p95": 200, "p99": 1_000, "p99.9": 10_000}
# run.json keys that must match for two runs to be comparable; duration is compared as measured.
SETTING_KEYS = (("users", "users"), ("spawn_rate", "spawn rate"), ("message_size", "message size"),
                ("size", "message size"), ("rate", "rate"), ("recipients", "recipients"))  # fmt: skip
DURATION_TOLERANCE = 0.10


@dataclass
class Change:
    label: str  # the request name, or "All requests"
    measure: str  # "throughput", "failures", "p95", ...
    baseline: float | None
    current: float | None
    worse: bool = False
    better: bool = False
    note: str = ""  # why a change was not flagged, or the test that flagged it

    @property
    def relative(self) -> float | None:
        """current / baseline - 1, None when either is missing or the baseline is 0."""
        if not (_is_number(self.baseline) and _is_number(self.current)) or self.baseline == 0:
            return None
        return self.current / self.baseline - 1.0


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) and math.isfinite(value)


# -- noise ------------------------------------------------------------------------------------


def mann_whitney_p(a, b) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, ties corrected)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return 1.0
    ranks = pd.Series(np.concatenate([a, b])).rank().to_numpy()
    u = ranks[:n].sum() - n * (n + 1) / 2.0
    _, ties = np.unique(np.concatenate([a, b]), return_counts=True)
    total = n + m
    variance = n * m / 12.0 * ((total + 1) - (ties**3 - ties).sum() / (total * (total - 1)))
    if variance <= 0:
        return 1.0
    z = (abs(u - n * m / 2.0) - 0.5) / math.sqrt(variance)
    return math.erfc(max(z, 0.0) / math.sqrt(2.0))


def _middle(values: np.ndarray) -> tuple[float, float]:
    """Where the middle 80% of a run's per-interval values lie."""
    low, high = np.percentile(values, MIDDLE)
    return float(low), float(high)


def _interval_test(current: np.ndarray, baseline: np.ndarray) -> tuple[bool, str]:
    """(the two runs' intervals differ beyond their noise, a note saying how)."""
    if len(current) < MIN_INTERVALS or len(baseline) < MIN_INTERVALS:
        return False, f"too few intervals to know the noise ({len(baseline)} and {len(current)}, need {MIN_INTERVALS})"
    p = mann_whitney_p(current, baseline)
    if p >= SIGNIFICANCE:
        return False, f"within the noise (Mann-Whitney p={p:.2g})"
    (low, high), (base_low, base_high) = _middle(current), _middle(baseline)
    if low <= base_high and base_low <= high:
        return False, f"the runs' seconds overlap ({base_low:.3g}\u2013{base_high:.3g} and {low:.3g}\u2013{high:.3g})"
    return True, f"the runs' seconds apart ({base_low:.3g}\u2013{base_high:.3g} and {low:.3g}\u2013{high:.3g}, Mann-Whitney p={p:.2g})"


def _steady(frame: pd.DataFrame | None, column: str) -> np.ndarray:
    """Per-interval values, without the first and last interval (ramping up, cut short)."""
    if frame is None or column not in frame:
        return np.array([])
    values = frame[column].to_numpy(dtype=float)
    if len(values) > 2:
        values = values[1:-1]
    return values[np.isfinite(values)]


# -- the measures -------------------------------------------------------------------------------


def _latency_change(key: str, current: Row, baseline: Row, intervals: tuple | None) -> Change:
    """``intervals``: the two runs' per-interval percentiles; None for a phase."""
    change = Change(_label(current), key, baseline.latency.get(key), current.latency.get(key))
    if key not in FLAGGED_LATENCIES or change.relative is None:
        return change
    worse, better = change.relative > LATENCY_TOLERANCE, change.relative < -LATENCY_TOLERANCE
    if not (worse or better):
        change.note = "within 10%"
        return change
    need = MIN_REQUESTS.get(key, 0)
    if min(current.count or 0, baseline.count or 0) < need:
        change.note = f"too few requests for a {key} (need {need:,} in each run)"
        return change
    shift = abs(change.current - change.baseline)
    if shift < max(LATENCY_FLOOR_MS, PRECISION * max(change.current, change.baseline)):
        change.note = f"under {LATENCY_FLOOR_MS:g} ms"
        return change
    if intervals is None:  # a phase: judged with its message, see the module's docstring
        change.worse, change.better = worse, better
        return change
    significant, change.note = _interval_test(_steady(intervals[0], key), _steady(intervals[1], key))
    change.worse, change.better = worse and significant, better and significant
    return change


def _throughput_change(current: Row, baseline: Row, timelines: tuple | None) -> Change:
    change = Change(_label(current), "throughput", baseline.rate, current.rate)
    if change.relative is None:
        return change
    worse, better = change.relative < -THROUGHPUT_TOLERANCE, change.relative > THROUGHPUT_TOLERANCE
    if not (worse or better):
        change.note = "within 10%"
        return change
    if timelines is None:
        change.note = "no per-interval rates to know the noise"
        return change
    significant, change.note = _interval_test(_steady(timelines[0], "rate"), _steady(timelines[1], "rate"))
    change.worse, change.better = worse and significant, better and significant
    return change


def _failures_change(current: Row, baseline: Row) -> Change:
    change = Change(_label(current), "failures", baseline.failure_ratio, current.failure_ratio)
    if not (_is_number(change.baseline) and _is_number(change.current)):
        return change
    rise = change.current - change.baseline
    worse = rise > FAILURE_POINTS or (change.baseline == 0 and change.current > 0)
    if worse and (current.failures or 0) < MIN_FAILED:
        change.note = f"fewer than {MIN_FAILED} failures"
        worse = False
    change.worse = worse
    change.better = -rise > FAILURE_POINTS or (change.current == 0 and change.baseline > 0)
    return change


def _label(row: Row) -> str:
    return f"{row.label} (phase)" if row.kind == "phase" else row.label


def _intervals(run: Run, row: Row) -> pd.DataFrame | None:
    """The per-interval percentiles of a request name, or of all requests."""
    frames = run.percentiles_over_time
    if row.kind != "total":
        return frames.get(row.label)
    if TOTAL_LABEL in frames:
        return frames[TOTAL_LABEL]
    return next(iter(frames.values())) if len(frames) == 1 else None


def _rates(run: Run) -> pd.DataFrame | None:
    timeline = run.timeline
    if timeline is None or "ok_per_s" not in timeline or timeline.empty:
        return None
    return pd.DataFrame({"rate": timeline["ok_per_s"].fillna(0) + timeline["failed_per_s"].fillna(0)})


def _compare_rows(current: Row, baseline: Row, current_run: Run, baseline_run: Run) -> list[Change]:
    # The timeline is of all requests: it tells the noise of the total, or of the one name there is.
    whole = current.kind == "total" or len(current_run.requests) == 1
    rates = (_rates(current_run), _rates(baseline_run)) if whole else None
    if rates is not None and (rates[0] is None or rates[1] is None):
        rates = None
    intervals = (_intervals(current_run, current), _intervals(baseline_run, baseline))
    changes = [_throughput_change(current, baseline, rates), _failures_change(current, baseline)]
    for key in SHOWN_LATENCIES:
        latency = _latency_change(key, current, baseline, intervals)
        if latency.baseline is not None or latency.current is not None:
            changes.append(latency)
    return changes


def compare_runs(current: Run, baseline: Run) -> list[Change]:
    """Changes of the total, then of each request name (and phase) both runs have."""
    changes = []
    if current.total is not None and baseline.total is not None:
        changes += _compare_rows(current.total, baseline.total, current, baseline)
    base_rows = {(row.type, row.name): row for row in baseline.requests}
    for row in current.requests:
        base = base_rows.get((row.type, row.name))
        if base is not None and (len(current.requests) > 1 or current.total is None):
            changes += _compare_rows(row, base, current, baseline)
    worse_messages = {change.measure for change in changes if change.worse}
    base_phases = {(row.type, row.name): row for row in baseline.phases}
    for row in current.phases:
        base = base_phases.get((row.type, row.name))
        if base is None:
            continue
        for key in (*FLAGGED_LATENCIES, "p99.9"):
            change = _latency_change(key, row, base, None)
            if change.worse and key not in worse_messages:
                change.worse = False
                change.note = "its message is not worse"
            change.better = change.better and not change.note
            changes.append(change)
    return changes


def settings_differences(current: Run, baseline: Run) -> tuple[list[str], list[str]]:
    """(what matches, what differs) between the two runs' settings, each as "users 20" or "users 20 -> 40"."""
    same, different = [], []
    seen = set()
    for key, name in SETTING_KEYS:
        a, b = baseline.metadata.get(key), current.metadata.get(key)
        if (a is None and b is None) or name in seen:
            continue
        seen.add(name)
        if a == b:
            same.append(f"{name} {b}")
        else:
            different.append(f"{name} {a if a is not None else '?'} \u2192 {b if b is not None else '?'}")
    a, b = baseline.duration, current.duration
    if _is_number(a) and _is_number(b) and max(a, b) > 0:
        text = f"duration {a:.0f} s" if abs(a - b) <= DURATION_TOLERANCE * max(a, b) else f"duration {a:.0f} s \u2192 {b:.0f} s"
        (same if "\u2192" not in text else different).append(text)
    return same, different
