"""HdrHistograms of loadkit's results: recorded in bulk, identical to hdrh's own, within 1% of numpy."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from loadkit.hdr import decode, encode, merge_into, new_histogram, percentiles_ms, record_ms, summary_ms

LEVELS = [50, 90, 95, 99, 99.9]


def within_one_percent(histogram, samples_ms):
    measured = percentiles_ms(histogram, LEVELS)
    for level in LEVELS:
        exact = float(np.percentile(samples_ms, level))
        assert measured[level] == pytest.approx(exact, rel=0.01), f"p{level}: {measured[level]} vs numpy {exact}"


def test_bulk_recording_is_identical_to_hdrh_record_value():
    rng = np.random.default_rng(7)
    values = array("d", rng.lognormal(np.log(3.0), 1.5, 20_000))  # 3 ms median, tails to seconds
    values.extend([0.0, 0.0004, 3_600_000.0 * 2])  # below 1 µs, and beyond the histogram's hour
    bulk = new_histogram()
    record_ms(bulk, values)
    one_by_one = new_histogram()
    for value in values:
        one_by_one.record_value(min(max(1, round(value * 1000)), one_by_one.highest_trackable_value))
    assert bulk.equals(one_by_one)
    assert (bulk.total_count, bulk.min_value, bulk.max_value) == (len(values), 1, 3_600_000_000)


def test_percentiles_match_hdrh_and_numpy_on_a_skewed_lognormal():
    rng = np.random.default_rng(1)
    samples = rng.lognormal(np.log(20.0), 1.2, 100_000)  # ms; p99.9 ~ 80x the median
    histogram = new_histogram()
    record_ms(histogram, samples)
    within_one_percent(histogram, samples)
    ours = percentiles_ms(histogram, LEVELS + [0, 100])
    for level in LEVELS + [0, 100]:
        # p * N / 100 is whole for each level: hdrh's rounded rank and the nearest rank agree
        assert ours[level] == histogram.get_value_at_percentile(level) / 1000


def test_sub_millisecond_latencies_keep_their_precision():
    rng = np.random.default_rng(2)
    samples = rng.lognormal(np.log(0.4), 0.5, 50_000)  # 400 µs median
    histogram = new_histogram()
    record_ms(histogram, samples)
    within_one_percent(histogram, samples)
    summary = summary_ms(histogram)
    assert summary["mean"] == pytest.approx(float(np.mean(samples)), rel=0.01)
    assert summary["max"] == pytest.approx(float(np.max(samples)), rel=0.01)


def test_workers_histograms_merged_after_encoding_match_the_pooled_samples():
    rng = np.random.default_rng(3)
    # Four "workers" with different shapes: their union is what the master must describe.
    shards = [rng.lognormal(np.log(median), sigma, 25_000) for median, sigma in
              ((5.0, 0.8), (12.0, 1.0), (0.6, 0.4), (40.0, 1.3))]
    merged = new_histogram()
    for shard in shards:
        histogram = new_histogram()
        record_ms(histogram, shard)
        merge_into(merged, decode(encode(histogram)))  # as it travels from worker to master
    pooled = np.concatenate(shards)
    assert merged.total_count == len(pooled)
    within_one_percent(merged, pooled)
    assert summary_ms(merged)["min"] == pytest.approx(float(pooled.min()), rel=0.01, abs=0.001)


def test_empty_histogram_has_no_percentiles():
    histogram = new_histogram()
    record_ms(histogram, array("d"))
    assert histogram.total_count == 0
    assert percentiles_ms(histogram, [99]) == {} and summary_ms(histogram) == {}
    target = new_histogram()
    merge_into(target, histogram)
    assert target.total_count == 0
