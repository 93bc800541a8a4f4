"""Histograms loadkit did not lay out: each count lands in the standard bucket of its lowest value.

hdrh's own histograms of other shapes (another highest value, another
precision or lowest value) are the oracle: the expected standard counts are
built by recording, into a standard histogram, the lowest value hdrh gives
each sample in the other layout. And the mean is hdrh's own.
"""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from loadkit import hdr
from loadkit.hdr import Distribution, decode_counts, decode_span, encode, new_histogram

RNG = np.random.default_rng(17)
SAMPLES_US = [int(value) for value in RNG.lognormal(mean=9.0, sigma=1.5, size=2000).clip(1, 50_000_000)]


def standard_counts_of(values_us) -> np.ndarray:
    histogram = new_histogram()
    for value in values_us:
        histogram.record_value(value)
    return np.frombuffer(histogram.counts, dtype=np.int64).copy()


def recorded(histogram: HdrHistogram, values_us) -> str:
    for value in values_us:
        histogram.record_value(value)
    return encode(histogram)


def test_a_shorter_highest_value_keeps_every_bucket():
    text = recorded(HdrHistogram(hdr.LOWEST_US, 60_000_000, hdr.SIGNIFICANT_FIGURES), SAMPLES_US)
    assert np.array_equal(decode_counts(text), standard_counts_of(SAMPLES_US))


def test_a_longer_highest_value_puts_what_is_past_an_hour_in_the_last_bucket():
    past_an_hour = [7_000_000_000, 7_100_000_000, 7_150_000_000]
    text = recorded(HdrHistogram(hdr.LOWEST_US, 7_200_000_000, hdr.SIGNIFICANT_FIGURES), SAMPLES_US + past_an_hour)
    expected = standard_counts_of(SAMPLES_US)
    expected[-1] += len(past_an_hour)
    counts = decode_counts(text)
    assert np.array_equal(counts, expected) and counts.sum() == len(SAMPLES_US) + 3


@pytest.mark.parametrize("lowest, figures", [(1, 2), (1000, 3), (10, 4)], ids=["2-figures", "lowest-1ms", "4-figures"])
def test_another_precision_or_lowest_value_is_rebucketed_by_lowest_value(lowest, figures):
    other = HdrHistogram(lowest, hdr.HIGHEST_US, figures)
    text = recorded(other, SAMPLES_US)
    expected = standard_counts_of(other.get_lowest_equivalent_value(value) for value in SAMPLES_US)
    counts = decode_counts(text)
    assert np.array_equal(counts, expected)
    start, span = decode_span(text)
    nonzero = np.flatnonzero(expected)
    assert (start, len(span)) == (nonzero[0], nonzero[-1] - nonzero[0] + 1)


def test_an_empty_histogram_of_another_layout_has_an_empty_span():
    start, span = decode_span(encode(HdrHistogram(1000, hdr.HIGHEST_US, 2)))
    assert (start, len(span)) == (0, 0)
    assert decode_counts(encode(HdrHistogram(1000, hdr.HIGHEST_US, 2))).sum() == 0


def test_the_mean_is_hdrh_s_own():
    histogram = new_histogram()
    for value in SAMPLES_US:
        histogram.record_value(value)
    assert Distribution.from_histogram(histogram).mean() == pytest.approx(histogram.get_mean_value(), rel=1e-12)
    assert Distribution.from_histogram(new_histogram()).mean() is None


def test_past_an_hour_in_a_coarse_layout_and_the_last_standard_bucket_add_up():
    last_bucket_us = int(hdr.standard_layout().lowest[-1])
    for figures in (2, 3):
        other = HdrHistogram(hdr.LOWEST_US, 7_200_000_000, figures)
        text = recorded(other, [last_bucket_us, 7_000_000_000, 7_100_000_000])
        counts = decode_counts(text)
        in_last = other.get_lowest_equivalent_value(last_bucket_us) >= last_bucket_us  # by its lowest value
        assert counts[-1] == 2 + in_last and counts.sum() == 3, figures
        assert in_last == (figures == 3)


def test_a_distribution_of_another_layout_reads_its_own_buckets():
    other = HdrHistogram(1000, hdr.HIGHEST_US, 2)
    for value in SAMPLES_US:
        other.record_value(max(value, 1000))
    distribution = Distribution.from_histogram(other)
    for percentile in (50, 90, 99, 100):
        assert distribution.percentiles([percentile]) == [float(other.get_value_at_percentile(percentile))]
    assert distribution.percentiles([0]) == [float(other.get_min_value())]  # p0: the bucket's lowest value


def test_p0_is_the_lowest_value_of_the_first_bucket_and_the_summary_mean_is_in_ms():
    histogram = new_histogram()
    for value in SAMPLES_US:
        histogram.record_value(value)
    counts = np.frombuffer(histogram.counts, dtype=np.int64)
    lowest = float(histogram.get_lowest_equivalent_value(min(SAMPLES_US)))
    assert hdr.percentiles_of_counts(counts, [0, 100]) == [lowest, float(histogram.get_max_value())]
    assert hdr.summary_ms(histogram)["mean"] == pytest.approx(histogram.get_mean_value() / 1000.0, rel=1e-12)


def test_text_that_is_no_histogram_says_so():
    with pytest.raises(hdr.HistogramError, match=r"^not an encoded HdrHistogram \(.+\)$"):
        hdr.decode("not base64 at all!")


def test_raw_samples_with_weights_are_read_exactly():
    distribution = Distribution.from_samples([30, 10, 50, 40], [1, 2, 0, 1])  # 50 never happened
    assert distribution.total == 4
    assert distribution.percentiles([0, 50, 75, 100]) == [10.0, 10.0, 30.0, 40.0]
    assert (distribution.minimum(), distribution.maximum(), distribution.mean()) == (10.0, 40.0, 22.5)
    assert Distribution.from_samples([], []).percentiles([50]) == [None]


def test_recording_twice_adds_to_what_was_recorded():
    ours, theirs = new_histogram(), new_histogram()
    for batch in ([1.5, 20.0, 20.0], [1.5, 3000.0]):
        hdr.record_ms(ours, batch)
        for value in batch:
            theirs.record_value(round(value * 1000))
    assert ours.total_count == theirs.total_count == 5
    assert np.array_equal(np.frombuffer(ours.counts, dtype=np.int64), np.frombuffer(theirs.counts, dtype=np.int64))
