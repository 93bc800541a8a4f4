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

import base64
import binascii
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyhdrh  # hdrh's C extension
from hdrh.codec import V2_COMPRESSION_COOKIE_BASE, V2_ENCODING_COOKIE_BASE, HdrCookieException, HdrLengthException
from hdrh.histogram import HdrHistogram

from loadkit.errors import LoadkitError

LOWEST = 1  # µs
HIGHEST = 3_600_000_000  # µs: one hour
SIGNIFICANT_FIGURES = 3
# Percentiles of the summary tables; "min" and "max" are read from the ends of the histogram.
SUMMARY_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
EXTERNAL_HEADER = struct.Struct(">II")  # cookie, length of what follows
PAYLOAD_HEADER = struct.Struct(">IIIIQQd")  # cookie, payload length, offset, figures, lowest, highest, ratio
DECODE_ERRORS = (binascii.Error, ValueError, TypeError, zlib.error, HdrCookieException, HdrLengthException)


class HistogramError(LoadkitError, ValueError):
    """A histogram that cannot be decoded."""


@dataclass(frozen=True)
class Layout:
    """Where each count of a histogram's counts array sits on the value axis (µs)."""

    lowest_trackable: int
    significant_figures: int
    counts_len: int
    lowest: np.ndarray  # lowest value (µs) of each index's range
    highest: np.ndarray  # highest value (µs) of each index's range


@lru_cache(maxsize=8)
def layout_of(lowest_trackable: int = LOWEST, highest_trackable: int = HIGHEST, significant_figures: int = SIGNIFICANT_FIGURES) -> Layout:
    template = HdrHistogram(lowest_trackable, highest_trackable, significant_figures)
    # Once per layout: hdrh's own index -> value functions, so values match it bit for bit.
    lowest = np.array([template.get_value_from_index(i) for i in range(template.counts_len)], dtype=np.int64)
    highest = np.array([template.get_highest_equivalent_value(int(v)) for v in lowest], dtype=np.int64)
    return Layout(lowest_trackable, significant_figures, template.counts_len, lowest, highest)


def standard_layout() -> Layout:
    """The metrics writer's layout, built on first use (about 30 ms) and cached."""
    return layout_of()


def empty_counts() -> np.ndarray:
    return np.zeros(standard_layout().counts_len, dtype=np.int64)


def decode_counts(encoded: str | bytes) -> np.ndarray:
    """The counts of an encoded histogram (hdrh's ``encode()``) in the standard layout.

    A histogram of other parameters is re-bucketed: each of its counts goes
    to the standard bucket of its lowest value.
    """
    start, values = decode_span(encoded)
    counts = np.zeros(standard_layout().counts_len, dtype=np.int64)
    counts[start : start + len(values)] = values
    return counts


def decode_span(encoded: str | bytes) -> tuple[int, np.ndarray]:
    """(first index, counts from there to the last non-zero one): the part worth adding.

    A latency histogram fills a few hundred of its 23,552 buckets; merging
    only those makes a report's many merges cheap.
    """
    decoded = _decode_standard(encoded)
    if decoded is None:
        counts = _decode_any(encoded)
        nonzero = np.flatnonzero(counts)
        decoded = (counts, int(nonzero[0]), int(nonzero[-1])) if len(nonzero) else (counts, 0, -1)
    counts, first, last = decoded
    if last < first:
        return 0, counts[:0]
    return first, counts[first : last + 1]


def add_span(target: np.ndarray, span: tuple[int, np.ndarray]) -> None:
    start, values = span
    target[start : start + len(values)] += values


def _decode_standard(encoded: str | bytes) -> tuple[np.ndarray, int, int] | None:
    """hdrh's own C decoder straight into a numpy array, for the standard layout; None for any other.

    ``HdrHistogram.decode`` spends most of its time building a Python object
    and a ctypes array around the counts; a report decodes tens of thousands.
    The wire format (V2): base64 of [cookie, length] + zlib([payload header] + varint counts).
    """
    try:
        raw = base64.b64decode(encoded)
        if len(raw) < EXTERNAL_HEADER.size:
            return None
        cookie, length = EXTERNAL_HEADER.unpack_from(raw)
        if cookie & ~0xF0 != V2_COMPRESSION_COOKIE_BASE or length != len(raw) - EXTERNAL_HEADER.size:
            return None
        data = zlib.decompress(raw[EXTERNAL_HEADER.size :])
    except DECODE_ERRORS:
        return None
    if len(data) < PAYLOAD_HEADER.size:
        return None
    cookie, _, _, figures, lowest, highest, _ = PAYLOAD_HEADER.unpack_from(data)
    if cookie & ~0xF0 != V2_ENCODING_COOKIE_BASE or (lowest, highest, figures) != (LOWEST, HIGHEST, SIGNIFICANT_FIGURES):
        return None
    counts = np.zeros(standard_layout().counts_len, dtype=np.int64)
    found = pyhdrh.decode(data, PAYLOAD_HEADER.size, counts.ctypes.data, len(counts), 8)
    if not found.get("total"):
        return counts, 0, -1
    return counts, int(found["min_nonzero_index"]), int(found["max_nonzero_index"])


def _decode_any(encoded: str | bytes) -> np.ndarray:
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
        resized[-1] += counts[keep:].sum()  # beyond an hour: counted in the last bucket, not lost
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
