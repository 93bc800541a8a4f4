"""HdrHistograms of latencies in microseconds: record many at once, encode, merge, read.

Every histogram of a results folder is ``HdrHistogram(1, 3_600_000_000, 3)``:
1 µs to 1 h at 3 significant digits. Values arrive in milliseconds (Locust's
unit) and are recorded as whole microseconds, at least 1.

hdrh's `record_value` costs about 1.5 µs a value in pure Python. `record_ms`
computes hdrh's own counts indexes for a whole array with numpy and adds them
into the histogram's counts in one go (about 0.1 µs a value); the result is
identical to calling `record_value` for each value (the tests check it).
"""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def _counts(histogram: HdrHistogram) -> np.ndarray:
    """The histogram's own counts array, as numpy sees it (no copy)."""
    return np.frombuffer(histogram.counts, dtype=np.uint64)


def record_ms(histogram: HdrHistogram, milliseconds) -> None:
    """Record every value of `milliseconds` (an array('d') or a sequence of floats)."""
    if not len(milliseconds):
        return
    values = np.rint(np.asarray(milliseconds, dtype=np.float64) * 1000.0)
    np.clip(values, LOWEST_US, histogram.highest_trackable_value, out=values)
    micros = values.astype(np.int64)
    # hdrh's _counts_index_for, for all values at once; frexp's exponent is the bit length.
    magnitude = histogram.unit_magnitude
    half_count_magnitude = histogram.sub_bucket_half_count_magnitude
    bit_length = np.frexp((micros | histogram.sub_bucket_mask).astype(np.float64))[1]
    bucket = bit_length - magnitude - (half_count_magnitude + 1)
    sub_bucket = micros >> (bucket + magnitude)
    index = ((bucket + 1) << half_count_magnitude) + sub_bucket - histogram.sub_bucket_half_count
    added = np.bincount(index)
    counts = _counts(histogram)
    counts[: len(added)] += added.astype(np.uint64)
    histogram.total_count += len(micros)
    histogram.min_value = min(histogram.min_value, int(micros.min()))
    histogram.max_value = max(histogram.max_value, int(micros.max()))


def add_into(target: HdrHistogram, other: HdrHistogram) -> None:
    """target += other (hdrh's own `add` loses the minimum when target is empty)."""
    if not other.total_count:
        return
    target.encoder.add(other.encoder)
    target.total_count += other.total_count
    target.min_value = min(target.min_value, other.min_value)
    target.max_value = max(target.max_value, other.max_value)


def encode(histogram: HdrHistogram) -> str:
    """hdrh's V2 encoding (compressed, base64) as text, for JSON."""
    return histogram.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii") if isinstance(text, str) else text)


def percentiles_ms(histogram: HdrHistogram, wanted: list[float]) -> dict[float, float]:
    """{percentile: ms} with hdrh's `get_value_at_percentile` meaning, computed with numpy.

    hdrh walks its 23,552 counters in Python for each call (about 1 ms); a
    threshold check or a report asks for many percentiles of many histograms.
    """
    total = histogram.total_count
    if not total:
        return {}
    cumulative = np.cumsum(_counts(histogram), dtype=np.uint64)
    result = {}
    for percentile in wanted:
        target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
        index = int(np.searchsorted(cumulative, target, side="left"))
        value = histogram.get_value_from_index(index)
        micros = histogram.get_highest_equivalent_value(value) if percentile else histogram.get_lowest_equivalent_value(value)
        result[percentile] = micros / 1000.0
    return result


def summary_ms(histogram: HdrHistogram) -> dict[str, float]:
    """min, max and mean in ms (min/max at the histogram's precision, mean from bucket middles)."""
    if not histogram.total_count:
        return {}
    counts = _counts(histogram)
    nonzero = np.flatnonzero(counts)
    middles = np.array([histogram._hdr_median_equiv_value(histogram.get_value_from_index(int(i))) for i in nonzero])
    mean = float((counts[nonzero].astype(np.float64) * middles).sum() / histogram.total_count)
    return {
        "min": histogram.get_lowest_equivalent_value(histogram.get_value_from_index(int(nonzero[0]))) / 1000.0,
        "max": histogram.get_highest_equivalent_value(histogram.get_value_from_index(int(nonzero[-1]))) / 1000.0,
        "mean": mean / 1000.0,
    }
