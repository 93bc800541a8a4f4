"""HdrHistograms of latencies: the one place loadkit makes, moves and reads them.

Layout
    Every histogram loadkit writes is ``HdrHistogram(LOWEST_US, HIGHEST_US,
    SIGNIFICANT_FIGURES)``: whole microseconds from 1 µs to 1 h at 3
    significant figures (23,552 counters; a bucket is at most 1/1024 of its
    values wide). Values arrive in milliseconds (Locust's unit) and are
    recorded rounded to the microsecond, clamped into that range.

Record
    `record_us` takes one value (hdrh's own ``record_value``, about 1.5 µs);
    `record_ms` a whole array at once: it computes hdrh's counts index of
    every value with numpy and adds them in one go (about 0.1 µs a value),
    with the same result as one ``record_value`` per value.

Codec
    `encode` / `decode`: hdrh's V2 encoding (base64 of zlib) as text, the
    form metrics.jsonl, e2e.json and the sink's stats hold. A report decodes
    tens of thousands of them: `decode_span` / `decode_counts` run hdrh's C
    decoder straight into a numpy array (hdrh builds a Python object and a
    ctypes array around each). That decoder is not hdrh's public API, so
    ``pyproject.toml`` pins hdrhistogram's exact version and a unit test
    fails if an upgrade changes it.

Merge
    `merge_into` adds one histogram into another; counts arrays of the
    standard layout (`empty_counts`, `add_span`) add as arrays. A master
    merges thousands of encoded histograms a second: `add_encoded` decodes
    one straight into a counts array (hdrh's C decoder, no hdrh object, about
    10 µs), and `encode_counts` encodes a counts array to the very text
    `encode` gives for a histogram with those counts, or at another zlib level.

zlib levels
    The V2 format asks for a zlib stream, not for a level: the level is not
    needed to decompress (RFC 1950, FLEVEL), and every reader (hdrh's
    ``HdrHistogram.decode``, Java's and Go's HdrHistogram, `decode`,
    `add_encoded`, ``results.SpanDecoder``) reads any. hdrh compresses at 6.
    What a master writes is compressed at `WRITE_LEVEL` (1): a merged
    second's varint counts compress twice as fast, 1-3% larger. What a
    worker sends its master is stored at `WIRE_LEVEL` (0, zlib's stored
    blocks): twice the bytes on the wire, but inflating it is a copy (0.4 µs
    instead of 5 µs), and a master inflates every histogram of every worker.

Percentiles: one rule
    The value at percentile p of N values is the sample of rank
    ceil(p * N / 100), at least 1, in sorted order: the nearest-rank rule,
    as HdrHistogram's reference (Java) ``getValueAtPercentile`` counts it.
    p is read as the decimal it is written as, so p99.9 of 1,000 values is
    the 999th, never the 1,000th by a rounding error. The histogram answers
    with the highest value of the bucket holding that sample (the lowest,
    for p0): never below the sample (to the µs), above it by less than the
    bucket's width. hdrh 0.10's own ``get_value_at_percentile`` rounds the
    rank to the nearest integer instead (int(p * N / 100 + 0.5)), one rank
    lower whenever p * N / 100 has a fraction under one half (p99.9 of
    1,600 values: the 1,598th); loadkit never uses it. Every percentile
    loadkit shows or checks (metrics, report tables and series, thresholds,
    the sink, e2e, probes, ``loadkit source``) comes from `nearest_rank`.

numpy is imported on first use, not with this module: the sink records its
trace delays one at a time and starts without it.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from hdrh.codec import V2_COMPRESSION_COOKIE_BASE, V2_ENCODING_COOKIE_BASE, HdrCookieException, HdrLengthException
from hdrh.histogram import HdrHistogram

from loadkit.errors import LoadkitError

__all__ = [
    "HIGHEST_US", "LOWEST_US", "SIGNIFICANT_FIGURES", "SUMMARY_PERCENTILES", "UNIT",
    "Distribution", "HistogramError", "Layout",
    "WIRE_LEVEL", "WRITE_LEVEL",
    "add_encoded", "add_span", "decode", "decode_counts", "decode_span", "empty_counts", "encode", "encode_counts",
    "layout_of", "merge_into",
    "nearest_rank", "new_histogram", "percentile_key", "percentile_of_sorted", "percentiles_ms",
    "percentiles_of_counts", "record_ms", "record_us", "standard_layout", "summary_ms",
]

UNIT = "µs"
LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_FIGURES = 3
# The percentiles of every summary table; "min" and "max" are the histogram's ends.
SUMMARY_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)

# zlib levels of what loadkit encodes itself (see "zlib levels" above); hdrh's own is 6.
HDRH_LEVEL = 6
WRITE_LEVEL = 1
WIRE_LEVEL = 0

EXTERNAL_HEADER = struct.Struct(">II")  # cookie, length of what follows
PAYLOAD_HEADER = struct.Struct(">IIIIQQd")  # cookie, payload length, offset, figures, lowest, highest, ratio
ENCODING_COOKIE = V2_ENCODING_COOKIE_BASE | 0x10  # word size 8, as hdrh writes
COMPRESSION_COOKIE = V2_COMPRESSION_COOKIE_BASE | 0x10
DECODE_ERRORS = (binascii.Error, ValueError, TypeError, zlib.error, struct.error, HdrCookieException, HdrLengthException)
STANDARD = (LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
# Bound once: a master runs them for every histogram of every worker.
_a2b_base64, _decompress = binascii.a2b_base64, zlib.decompress
_unpack_external, _unpack_payload = EXTERNAL_HEADER.unpack_from, PAYLOAD_HEADER.unpack_from


class HistogramError(LoadkitError, ValueError):
    """Text that is not an encoded HdrHistogram."""


# -- the rule ------------------------------------------------------------------------------


def nearest_rank(percentile: float, total: int) -> int:
    """The 1-based rank of the value at `percentile` (0..100) among `total` sorted values."""
    share = _share(float(percentile))
    return max(-(-share.numerator * total // share.denominator), 1)  # ceil, in integers


@lru_cache(maxsize=1024)
def _share(percentile: float) -> Fraction:
    """percentile / 100 as an exact fraction of the decimal written (99.9 -> 999/1000), within 0..1."""
    return min(max(Fraction(repr(percentile)), Fraction(0)), Fraction(100)) / 100


def percentile_of_sorted(sorted_values, percentile: float):
    """The value at `percentile` of raw sorted values (``loadkit source`` keeps every one); None if empty."""
    if not len(sorted_values):
        return None
    return sorted_values[min(nearest_rank(percentile, len(sorted_values)), len(sorted_values)) - 1]


def percentile_key(percentile: float) -> str:
    """50.0 -> "p50", 99.9 -> "p99.9"."""
    return f"p{percentile:g}"


# -- the layout ----------------------------------------------------------------------------


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


@dataclass(frozen=True)
class Layout:
    """Where each counter of a histogram sits on the value axis (µs)."""

    lowest_trackable: int
    highest_trackable: int
    significant_figures: int
    counts_len: int
    lowest: object  # np.ndarray: lowest value of each counter's range
    highest: object  # np.ndarray: highest value of each counter's range


@lru_cache(maxsize=8)
def layout_of(lowest_trackable: int = LOWEST_US, highest_trackable: int = HIGHEST_US,
              significant_figures: int = SIGNIFICANT_FIGURES) -> Layout:
    """hdrh's index -> value mapping for every counter at once (its get_value_from_index, vectorised)."""
    import numpy as np

    template = HdrHistogram(lowest_trackable, highest_trackable, significant_figures)
    half_magnitude, half, unit = template.sub_bucket_half_count_magnitude, template.sub_bucket_half_count, template.unit_magnitude
    index = np.arange(template.counts_len, dtype=np.int64)
    bucket = (index >> half_magnitude) - 1
    sub_bucket = (index & (half - 1)) + half
    first = bucket < 0
    sub_bucket[first] -= half
    bucket[first] = 0
    lowest = sub_bucket << (bucket + unit)
    highest = lowest + (np.int64(1) << (bucket + unit)) - 1
    return Layout(lowest_trackable, highest_trackable, significant_figures, template.counts_len, lowest, highest)


def standard_layout() -> Layout:
    return layout_of()


def empty_counts():
    """A zero counts array (int64) in the standard layout."""
    import numpy as np

    return np.zeros(standard_layout().counts_len, dtype=np.int64)


def _counts(histogram: HdrHistogram):
    """The histogram's own counts, as numpy sees them (no copy: writes go into the histogram)."""
    import numpy as np

    return np.frombuffer(histogram.counts, dtype=np.int64)


def _layout_of_histogram(histogram: HdrHistogram) -> Layout:
    return layout_of(histogram.lowest_trackable_value, histogram.highest_trackable_value, histogram.significant_figures)


# -- record ----------------------------------------------------------------------------------


def record_us(histogram: HdrHistogram, micros: int) -> None:
    """One value in whole µs, clamped into the layout's range."""
    histogram.record_value(min(max(micros, LOWEST_US), histogram.highest_trackable_value))


def record_ms(histogram: HdrHistogram, milliseconds) -> None:
    """Every value of `milliseconds` (an array('d') or a sequence of floats), rounded to whole µs."""
    if not len(milliseconds):
        return
    import numpy as np

    values = np.rint(np.asarray(milliseconds, dtype=np.float64) * 1000.0)
    np.clip(values, LOWEST_US, histogram.highest_trackable_value, out=values)
    micros = values.astype(np.int64)
    # hdrh's counts index for all values at once; frexp's exponent is the bit length.
    magnitude = histogram.unit_magnitude
    half_count_magnitude = histogram.sub_bucket_half_count_magnitude
    bit_length = np.frexp((micros | histogram.sub_bucket_mask).astype(np.float64))[1]
    bucket = bit_length - magnitude - (half_count_magnitude + 1)
    sub_bucket = micros >> (bucket + magnitude)
    index = ((bucket + 1) << half_count_magnitude) + sub_bucket - histogram.sub_bucket_half_count
    added = np.bincount(index)
    _counts(histogram)[: len(added)] += added
    histogram.total_count += len(micros)
    histogram.min_value = min(histogram.min_value, int(micros.min()))
    histogram.max_value = max(histogram.max_value, int(micros.max()))


# -- merge -------------------------------------------------------------------------------------


def merge_into(target: HdrHistogram, other: HdrHistogram) -> None:
    """target += other (hdrh's own ``add`` sets the minimum to 0 when the target is empty)."""
    if not other.total_count:
        return
    same = (target.counts_len, target.unit_magnitude, target.sub_bucket_count) == (
        other.counts_len, other.unit_magnitude, other.sub_bucket_count)
    if not same:
        target.add(other)  # value by value, into the target's own buckets
        return
    _counts(target)[:] += _counts(other)
    target.total_count += other.total_count
    target.min_value = min(target.min_value, other.min_value)
    target.max_value = max(target.max_value, other.max_value)


def add_span(target, span) -> None:
    """Add a `decode_span` result into a standard-layout counts array."""
    start, values = span
    target[start : start + len(values)] += values


# -- codec ---------------------------------------------------------------------------------------


def encode(histogram: HdrHistogram, level: int = HDRH_LEVEL) -> str:
    """hdrh's V2 encoding (compressed, base64) as text, for JSON; at another zlib level, the
    same counts in another zlib stream (histograms of the standard layout; hdrh's own otherwise)."""
    layout = (histogram.lowest_trackable_value, histogram.highest_trackable_value, histogram.significant_figures)
    if level == HDRH_LEVEL or layout != STANDARD:
        return histogram.encode().decode("ascii")
    last = histogram.get_counts_array_index(histogram.max_value) if histogram.total_count else -1
    return encode_counts(_counts(histogram), last, level)


def decode(text: str | bytes) -> HdrHistogram:
    """An encoded histogram (any layout) as an hdrh object; HistogramError if it is not one."""
    try:
        return HdrHistogram.decode(text.encode("ascii") if isinstance(text, str) else text)
    except DECODE_ERRORS as error:
        raise HistogramError(f"not an encoded HdrHistogram ({error or type(error).__name__})") from None


def decode_counts(encoded: str | bytes):
    """The counts of an encoded histogram in the standard layout (int64 array).

    A histogram of another layout is re-bucketed: each of its counts goes to
    the standard bucket of its lowest value.
    """
    start, values = decode_span(encoded)
    counts = empty_counts()
    counts[start : start + len(values)] = values
    return counts


def decode_span(encoded: str | bytes):
    """(first index, counts from there to the last non-zero one): the part worth adding.

    A latency histogram fills a few hundred of its 23,552 counters; merging
    only those makes a report's many merges cheap.
    """
    import numpy as np

    decoded = _decode_standard(encoded)
    if decoded is None:
        counts = _decode_any(encoded)
        nonzero = np.flatnonzero(counts)
        decoded = (counts, int(nonzero[0]), int(nonzero[-1])) if len(nonzero) else (counts, 0, -1)
    counts, first, last = decoded
    if last < first:
        return 0, counts[:0]
    return first, counts[first : last + 1]


def _decode_standard(encoded: str | bytes):
    """(counts, first, last non-zero index) by hdrh's C decoder, for the standard layout; None otherwise.

    The V2 wire format: base64 of [cookie, length] + zlib([payload header] + varint counts).
    ``pyhdrh.decode`` is hdrh's private C function (pinned version, tested).
    """
    import numpy as np
    import pyhdrh

    data = _standard_payload(encoded)
    if data is None:
        return None
    counts = np.zeros(standard_layout().counts_len, dtype=np.int64)
    found = pyhdrh.decode(data, PAYLOAD_HEADER.size, counts.ctypes.data, len(counts), 8)
    if not found.get("total"):
        return counts, 0, -1
    return counts, int(found["min_nonzero_index"]), int(found["max_nonzero_index"])


def _standard_payload(encoded: str | bytes) -> bytes | None:
    """The decompressed payload (header + varint counts) of a standard-layout histogram; None otherwise."""
    try:
        raw = _a2b_base64(encoded)  # base64's b64decode without its wrapper: thousands a second
        cookie, length = _unpack_external(raw)
        if cookie & ~0xF0 != V2_COMPRESSION_COOKIE_BASE or length != len(raw) - EXTERNAL_HEADER.size:
            return None
        data = _decompress(raw[EXTERNAL_HEADER.size :])
        cookie, _, _, figures, lowest, highest, _ = _unpack_payload(data)
    except DECODE_ERRORS:
        return None
    if cookie & ~0xF0 != V2_ENCODING_COOKIE_BASE or (lowest, highest, figures) != STANDARD:
        return None
    return data


class _Scratch:
    """Buffers reused by every `add_encoded` / `encode_counts` call (gevent never switches inside one)."""

    def __init__(self):
        import ctypes

        import numpy as np
        import pyhdrh

        counts_len = standard_layout().counts_len
        self.counts = np.zeros(counts_len, dtype=np.int64)  # zero again after each use
        self.counts_address = self.counts.ctypes.data
        # pyhdrh.encode wants room for the worst case: 9 bytes a counter (a 64-bit varint).
        self.encoded = (ctypes.c_ubyte * (PAYLOAD_HEADER.size + 9 * counts_len))()
        self.encoded_address = ctypes.addressof(self.encoded)
        self.view = memoryview(self.encoded).cast("B")
        self.decode_into = pyhdrh.decode


@lru_cache(maxsize=1)
def _scratch() -> _Scratch:
    return _Scratch()


def add_encoded(counts, encoded: str | bytes) -> tuple[int, int, int]:
    """counts += an encoded histogram's counts; (total, first, last non-zero index), (0, 0, -1) if empty.

    `counts` is a standard-layout int64 array. A histogram of another layout
    is re-bucketed as `decode_counts` does; HistogramError if `encoded` is
    not a histogram.
    """
    data = _standard_payload(encoded)
    if data is None:  # another layout, or not a histogram (decode_span says which)
        first, values = decode_span(encoded)
        if not len(values):
            return 0, 0, -1
        counts[first : first + len(values)] += values
        nonzero = values.nonzero()[0]
        return int(values.sum()), first + int(nonzero[0]), first + int(nonzero[-1])
    scratch = _scratch()
    decoded = scratch.counts
    try:
        found = scratch.decode_into(data, PAYLOAD_HEADER.size, scratch.counts_address, len(decoded), 8)
    except (ValueError, IndexError, OverflowError) as error:
        decoded[:] = 0  # what was decoded before the error
        raise HistogramError(f"not an encoded HdrHistogram ({error})") from None
    total = found["total"]
    if not total:
        return 0, 0, -1
    first, last = found["min_nonzero_index"], found["max_nonzero_index"] + 1
    decoded = decoded[first:last]
    counts[first:last] += decoded
    decoded.fill(0)  # only the decoder's non-zero counters are written: the scratch must be zero
    return total, first, last - 1


def encode_counts(counts, last: int | None = None, level: int = HDRH_LEVEL) -> str:
    """`encode` of a standard-layout histogram holding `counts`, without building one.

    hdrh encodes the counters up to its maximum value's: `last` is the
    highest non-zero index when the caller knows it (-1: empty). At hdrh's
    level (the default) the text is `encode`'s, byte for byte; at another
    level, the same counts in another zlib stream.
    """
    import pyhdrh

    if last is None:
        nonzero = counts.nonzero()[0]
        last = int(nonzero[-1]) if len(nonzero) else -1
    if last < 0:
        return _empty_text(level)
    scratch = _scratch()
    header = PAYLOAD_HEADER.size
    written = pyhdrh.encode(counts.ctypes.data, last + 1, 8, scratch.encoded_address + header,
                            len(scratch.encoded) - header)
    PAYLOAD_HEADER.pack_into(scratch.encoded, 0, ENCODING_COOKIE, written, 0,
                             SIGNIFICANT_FIGURES, LOWEST_US, HIGHEST_US, 1.0)
    compressed = zlib.compress(scratch.view[: header + written], level)  # no copy of the payload first
    return binascii.b2a_base64(EXTERNAL_HEADER.pack(COMPRESSION_COOKIE, len(compressed)) + compressed,
                               newline=False).decode("ascii")


@lru_cache(maxsize=8)
def _empty_text(level: int) -> str:
    """An empty histogram's text: the same for every interval of a key with nothing in it."""
    payload = PAYLOAD_HEADER.pack(ENCODING_COOKIE, 0, 0, SIGNIFICANT_FIGURES, LOWEST_US, HIGHEST_US, 1.0)
    compressed = zlib.compress(payload, level)
    return binascii.b2a_base64(EXTERNAL_HEADER.pack(COMPRESSION_COOKIE, len(compressed)) + compressed,
                               newline=False).decode("ascii")


def _decode_any(encoded: str | bytes):
    import numpy as np

    histogram = decode(encoded)
    counts = _counts(histogram)
    standard = standard_layout()
    if (histogram.lowest_trackable_value, histogram.significant_figures) == (LOWEST_US, SIGNIFICANT_FIGURES):
        if len(counts) == standard.counts_len:
            return counts
        # Same buckets, another highest trackable value: only the length differs.
        resized = np.zeros(standard.counts_len, dtype=np.int64)
        keep = min(len(counts), standard.counts_len)
        resized[:keep] = counts[:keep]
        resized[-1] += counts[keep:].sum()  # beyond an hour: counted in the last bucket, not lost
        return resized
    own = _layout_of_histogram(histogram)
    nonzero = np.flatnonzero(counts)
    target = np.searchsorted(standard.lowest, own.lowest[nonzero], side="right") - 1
    result = np.zeros(standard.counts_len, dtype=np.int64)
    np.add.at(result, np.clip(target, 0, standard.counts_len - 1), counts[nonzero])
    return result


# -- read ------------------------------------------------------------------------------------------


@dataclass
class Distribution:
    """Latencies as (value range, count) bins sorted by value, values in µs: what percentiles are read from.

    Built from a histogram's counts (`from_counts`, `from_histogram`) or from
    weighted exact values such as Locust's rounded response times (`from_samples`).
    """

    lowest: object  # np.ndarray
    highest: object  # np.ndarray
    counts: object  # np.ndarray of int64

    @classmethod
    def from_counts(cls, counts, layout: Layout | None = None) -> Distribution:
        import numpy as np

        layout = standard_layout() if layout is None else layout
        nonzero = np.flatnonzero(counts)
        return cls(layout.lowest[nonzero], layout.highest[nonzero], np.asarray(counts)[nonzero].astype(np.int64))

    @classmethod
    def from_histogram(cls, histogram: HdrHistogram) -> Distribution:
        return cls.from_counts(_counts(histogram), _layout_of_histogram(histogram))

    @classmethod
    def from_samples(cls, values_us, counts) -> Distribution:
        import numpy as np

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
        """The value (µs) at each percentile by the nearest-rank rule; None for an empty distribution."""
        return _values_at(self.counts, self.lowest, self.highest, percentiles)

    def minimum(self) -> float | None:
        return float(self.lowest[0]) if len(self.counts) else None

    def maximum(self) -> float | None:
        return float(self.highest[-1]) if len(self.counts) else None

    def mean(self) -> float | None:
        """From the middle of each bin (hdrh's "median equivalent" values), as hdrh's get_mean_value."""
        total = self.total
        if not total:
            return None
        middles = self.lowest + (self.highest - self.lowest + 1) // 2
        return float((self.counts * middles.astype(float)).sum() / total)

    def summary_ms(self) -> dict[str, float | None]:
        """min, p50, p90, p95, p99, p99.9, max in milliseconds."""
        values = [self.minimum(), *self.percentiles(SUMMARY_PERCENTILES), self.maximum()]
        keys = ["min", *(percentile_key(p) for p in SUMMARY_PERCENTILES), "max"]
        return {key: None if value is None else value / 1000.0 for key, value in zip(keys, values)}


def _values_at(counts, lowest, highest, percentiles) -> list[float | None]:
    """The walk every percentile goes through: the first bin whose running count reaches the rank."""
    import numpy as np

    cumulative = np.cumsum(counts)
    total = int(cumulative[-1]) if len(cumulative) else 0
    if total == 0:
        return [None for _ in percentiles]
    positions = np.searchsorted(cumulative, [nearest_rank(p, total) for p in percentiles], side="left")
    # The bin's highest value: never below the sample of that rank (its lowest for p0, the minimum).
    return [float(highest[i] if p else lowest[i]) for p, i in zip(percentiles, positions)]


def percentiles_of_counts(counts, percentiles) -> list[float | None]:
    """The value (µs) at each percentile of a standard-layout counts array (no Distribution to build)."""
    layout = standard_layout()
    return _values_at(counts, layout.lowest, layout.highest, percentiles)


def percentiles_ms(histogram: HdrHistogram, wanted) -> dict[float, float]:
    """{percentile: ms} by the nearest-rank rule; {} for an empty histogram."""
    if not histogram.total_count:
        return {}
    values = Distribution.from_histogram(histogram).percentiles(list(wanted))
    return {percentile: value / 1000.0 for percentile, value in zip(wanted, values)}


def summary_ms(histogram: HdrHistogram) -> dict[str, float]:
    """min, max and mean in ms (min/max at the histogram's precision, the mean from bucket middles)."""
    if not histogram.total_count:
        return {}
    distribution = Distribution.from_histogram(histogram)
    return {
        "min": distribution.minimum() / 1000.0,
        "max": distribution.maximum() / 1000.0,
        "mean": distribution.mean() / 1000.0,
    }
