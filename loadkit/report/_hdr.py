"""HdrHistograms as numpy count arrays: decode, merge, percentiles.

``hdrh`` decodes a histogram in C but walks its counts in Python for every
percentile. A report reads thousands of interval histograms, so here each
one becomes a numpy view of its counts in one fixed layout (1 µs .. 1 h,
3 significant digits, the layout the metrics writer uses): merging is an
array addition and a percentile is a cumulative sum and a binary search.

Percentiles, min and max follow ``hdrh.histogram.HdrHistogram`` exactly
(same target count, same highest/lowest equivalent values), so the report's
numbers are the merged histogram's.
"""

from __future__ import annotations

import binascii
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from hdrh.codec import HdrCookieException, HdrLengthException
from hdrh.histogram import HdrHistogram

LOWEST = 1  # µs
HIGHEST = 3_600_000_000  # µs: one hour
SIGNIFICANT_FIGURES = 3
# Percentiles of the summary tables; "min" and "max" are read from the ends of the histogram.
SUMMARY_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
DECODE_ERRORS = (binascii.Error, ValueError, TypeError, zlib.error, HdrCookieException, HdrLengthException)


class HistogramError(ValueError):
    """A histogram that cannot be decoded."""


@dataclass(frozen=True)
class Layout:
    """Where each count of a histogram's counts array sits on the value axis (µs)."""

    lowest_trackable: int
    significant_figures: int
    counts_len: int
    lowest: np.ndarray  # lowest value (µs) of each index's range
    highest: np.ndarray  # highest value (µs) of each index's range

    @property
    def middle(self) -> np.ndarray:
        return (self.lowest + self.highest + 1) / 2.0


@lru_cache(maxsize=8)
def layout_of(lowest_trackable: int = LOWEST, highest_trackable: int = HIGHEST, significant_figures: int = SIGNIFICANT_FIGURES) -> Layout:
    template = HdrHistogram(lowest_trackable, highest_trackable, significant_figures)
    # Once per layout: hdrh's own index -> value functions, so values match it bit for bit.
    lowest = np.array([template.get_value_from_index(i) for i in range(template.counts_len)], dtype=np.int64)
    highest = np.array([template.get_highest_equivalent_value(int(v)) for v in lowest], dtype=np.int64)
    return Layout(lowest_trackable, significant_figures, template.counts_len, lowest, highest)


STANDARD = None  # filled lazily: building a layout takes ~50 ms


def standard_layout() -> Layout:
    global STANDARD
    if STANDARD is None:
        STANDARD = layout_of()
    return STANDARD


def empty_counts() -> np.ndarray:
    return np.zeros(standard_layout().counts_len, dtype=np.int64)


def decode_counts(encoded: str | bytes) -> np.ndarray:
    """The counts of an encoded histogram (hdrh's ``encode()``) in the standard layout.

    A histogram of other parameters is re-bucketed: each of its counts goes
    to the standard bucket of its lowest value.
    """
    try:
        histogram = HdrHistogram.decode(encoded)
    except DECODE_ERRORS as error:
        raise HistogramError(f"not an encoded HdrHistogram ({error or type(error).__name__})") from None
    counts = np.ctypeslib.as_array(histogram.counts).view(np.int64)
    standard = standard_layout()
    if (histogram.lowest_trackable_value, histogram.significant_figures) == (LOWEST, SIGNIFICANT_FIGURES):
        if len(counts) == standard.counts_len:
            return counts
        # Same buckets, another highest trackable value: only the length differs.
        resized = np.zeros(standard.counts_len, dtype=np.int64)
        keep = min(len(counts), standard.counts_len)
        resized[:keep] = counts[:keep]
        resized[-1] += counts[keep:].sum()
        return resized
    own = layout_of(histogram.lowest_trackable_value, histogram.highest_trackable_value, histogram.significant_figures)
    nonzero = np.flatnonzero(counts)
    target = np.searchsorted(standard.lowest, own.lowest[nonzero], side="right") - 1
    result = np.zeros(standard.counts_len, dtype=np.int64)
    np.add.at(result, np.clip(target, 0, standard.counts_len - 1), counts[nonzero])
    return result


def percentile_targets(total: int, percentiles) -> list[int]:
    """hdrh's ``get_target_count_at_percentile`` for each percentile."""
    return [max(int((min(p, 100.0) * total / 100) + 0.5), 1) for p in percentiles]


@dataclass
class Distribution:
    """Latencies as (value range, count) bins, sorted by value; values in µs.

    Built from a histogram's counts (``from_counts``) or from any weighted
    samples such as Locust's rounded response times (``from_samples``).
    """

    lowest: np.ndarray
    highest: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> Distribution:
        layout = standard_layout()
        nonzero = np.flatnonzero(counts)
        return cls(layout.lowest[nonzero], layout.highest[nonzero], counts[nonzero].astype(np.int64))

    @classmethod
    def from_samples(cls, values_us, counts) -> Distribution:
        values = np.asarray(values_us, dtype=np.float64)
        weights = np.asarray(counts, dtype=np.int64)
        order = np.argsort(values, kind="stable")
        keep = weights[order] > 0
        values, weights = values[order][keep], weights[order][keep]
        return cls(values, values, weights)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def percentiles(self, percentiles) -> list[float | None]:
        """Values (µs) at each percentile, None for an empty distribution."""
        total = self.total
        if total == 0:
            return [None for _ in percentiles]
        cumulative = np.cumsum(self.counts)
        positions = np.searchsorted(cumulative, percentile_targets(total, percentiles), side="left")
        positions = np.minimum(positions, len(cumulative) - 1)
        return [float(self.highest[i] if p else self.lowest[i]) for p, i in zip(percentiles, positions)]

    def minimum(self) -> float | None:
        return float(self.lowest[0]) if len(self.counts) else None

    def maximum(self) -> float | None:
        return float(self.highest[-1]) if len(self.counts) else None

    def summary_ms(self) -> dict[str, float | None]:
        """min, p50, p90, p95, p99, p99.9, max in milliseconds."""
        values = [self.minimum(), *self.percentiles(SUMMARY_PERCENTILES), self.maximum()]
        keys = ["min", *(percentile_key(p) for p in SUMMARY_PERCENTILES), "max"]
        return {key: None if value is None else value / 1000.0 for key, value in zip(keys, values)}


def percentile_key(percentile: float) -> str:
    """50.0 -> "p50", 99.9 -> "p99.9"."""
    return f"p{percentile:g}"


def percentiles_of_counts(counts: np.ndarray, percentiles) -> list[float | None]:
    """Values (µs) at each percentile of a standard-layout counts array, without a Distribution."""
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1]) if len(cumulative) else 0
    if total == 0:
        return [None for _ in percentiles]
    layout = standard_layout()
    positions = np.searchsorted(cumulative, percentile_targets(total, percentiles), side="left")
    return [float(layout.highest[i] if p else layout.lowest[i]) for p, i in zip(percentiles, positions)]
