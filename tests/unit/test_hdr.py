"""loadkit.hdr, the one histogram module: every reported percentile against raw samples, merge, codec, layout.

The rank rule is checked against a reference written here with integers
only: the value at p of N sorted samples is the one of rank ceil(p * N / 100).
A histogram answers with the top of the bucket holding that sample, so a
reported value must be exactly that bucket's top, and never more than the
histogram's stated precision (3 significant figures) above the sample.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from loadkit import hdr
from loadkit.errors import LoadkitError
from loadkit.hdr import (
    Distribution,
    HistogramError,
    decode,
    decode_counts,
    decode_span,
    empty_counts,
    encode,
    merge_into,
    new_histogram,
    percentile_of_sorted,
    percentiles_ms,
    percentiles_of_counts,
    record_ms,
    summary_ms,
)

# (percentile, its share as an exact fraction): p99.9 is 999/1000, whatever floats make of 99.9 * N / 100.
LEVELS = ((50, 50, 100), (90, 90, 100), (95, 95, 100), (99, 99, 100), (99.9, 999, 1000))
KEYS = {50: "p50", 90: "p90", 95: "p95", 99: "p99", 99.9: "p99.9"}


def reference_rank(numerator: int, denominator: int, total: int) -> int:
    """The textbook nearest rank: the smallest r with r / total >= numerator / denominator."""
    return max(-(-numerator * total // denominator), 1)


def micros(sample_ms: float) -> int:
    return min(max(int(np.rint(sample_ms * 1000.0)), hdr.LOWEST_US), hdr.HIGHEST_US)


def bucket_top_ms(sample_ms: float) -> float:
    return new_histogram().get_highest_equivalent_value(micros(sample_ms)) / 1000.0


def bucket_bottom_ms(sample_ms: float) -> float:
    return new_histogram().get_lowest_equivalent_value(micros(sample_ms)) / 1000.0


def expected_ms(sorted_ms: np.ndarray) -> dict[str, float]:
    """What every reported summary must say of these samples: min, p50 .. p99.9, max."""
    expected = {"min": bucket_bottom_ms(sorted_ms[0]), "max": bucket_top_ms(sorted_ms[-1])}
    for percentile, numerator, denominator in LEVELS:
        sample = sorted_ms[reference_rank(numerator, denominator, len(sorted_ms)) - 1]
        expected[KEYS[percentile]] = bucket_top_ms(sample)
        # the stated precision: whole µs, 3 significant figures (a bucket is at most 1/1024 of its values wide)
        assert -0.0005 <= expected[KEYS[percentile]] - sample <= sample / 1000 + 0.0005
    return expected


def reported_by_every_reader(samples_ms: np.ndarray) -> dict[str, dict[str, float]]:
    """The summary each of loadkit's readers gives of the same samples."""
    histogram = new_histogram()
    record_ms(histogram, samples_ms)
    levels = [percentile for percentile, _, _ in LEVELS]
    readers = {}

    # metrics, thresholds, e2e, probes: an hdrh object and percentiles_ms / summary_ms
    metrics = {KEYS[p]: value for p, value in percentiles_ms(decode(encode(histogram)), levels).items()}
    metrics.update({key: summary_ms(histogram)[key] for key in ("min", "max")})
    readers["metrics"] = metrics

    # the report's table: counts decoded straight into numpy, a Distribution's summary
    readers["report table"] = Distribution.from_counts(decode_counts(encode(histogram))).summary_ms()

    # the report's series over time: counts of a time bucket
    counts = empty_counts()
    hdr.add_span(counts, decode_span(encode(histogram)))
    over_time = dict(zip((KEYS[p] for p in levels), (v / 1000.0 for v in percentiles_of_counts(counts, levels))))
    readers["report over time"] = {**over_time, "min": metrics["min"], "max": metrics["max"]}

    # the sink's trace stats: one value at a time
    from loadkit.sink import TraceStats

    trace = TraceStats()
    for index, value in enumerate(samples_ms):
        sent = SimpleNamespace(run_id="r", source="s", sequence=index, sent_at=1000.0)
        trace.record(sent, 1000.0 + micros(value) / 1e6)
    delay = trace.as_dict()["delay_ms"]
    readers["sink"] = {key: delay[key] for key in ("min", "max", "p50", "p90", "p99", "p99.9")}
    return readers


SAMPLE_SETS = {
    # dense: every rank has close neighbours
    "100,000 lognormal": np.random.default_rng(1).lognormal(np.log(20.0), 1.2, 100_000),
    # sparse: p99.9 of 1,000 is the 999th sample, not the 1,000th (the maximum)
    "1,000 far apart": np.random.default_rng(2).permutation(np.arange(1, 1001) ** 2 / 100.0),
    # the rank hdrh 0.10 rounds down: p99.9 of 1,600 is the 1,599th (1,598.4 rounds to 1,598)
    "1,600 far apart": np.random.default_rng(3).permutation(np.arange(1, 1601) * 0.5),
    # skewed: a Pareto tail, most samples in the first few ms
    "3,000 Pareto": (np.random.default_rng(4).pareto(1.1, 3_000) + 1.0) * 2.0,
    "seven": np.array([9.0, 0.2, 4.4, 120.0, 1.7, 33.0, 0.9]),
    "a single sample": np.array([13.9]),
    "all equal": np.full(500, 7.3),
    "sub-millisecond": np.random.default_rng(5).lognormal(np.log(0.4), 0.5, 20_000),
}


@pytest.mark.parametrize("name", SAMPLE_SETS)
def test_every_reported_percentile_is_the_nearest_rank_sample_within_the_histograms_precision(name):
    samples = SAMPLE_SETS[name]
    expected = expected_ms(np.sort(samples))
    for reader, reported in reported_by_every_reader(samples).items():
        assert reported == {key: expected[key] for key in reported}, reader  # the sink has no p95


def test_p99_9_of_1600_samples_is_the_1599th_where_hdrh_rounds_to_the_1598th():
    samples = np.arange(1, 1601) * 0.5  # ms: the k-th sample is k/2 ms, buckets far narrower than 0.5 ms
    histogram = new_histogram()
    record_ms(histogram, samples)
    assert percentiles_ms(histogram, [99.9])[99.9] == bucket_top_ms(799.5)  # the 1,599th
    assert Distribution.from_counts(decode_counts(encode(histogram))).summary_ms()["p99.9"] == bucket_top_ms(799.5)
    assert histogram.get_value_at_percentile(99.9) / 1000.0 == bucket_top_ms(799.0)  # hdrh: one rank lower


def test_the_rank_reads_a_percentile_as_the_decimal_it_is_written_as():
    assert 99.9 / 100 * 1000 > 999  # floats overshoot: a plain ceil would pick the 1,000th
    assert hdr.nearest_rank(99.9, 1000) == 999
    assert hdr.nearest_rank(99.9, 1600) == 1599
    assert hdr.nearest_rank(0, 10) == 1 and hdr.nearest_rank(100, 10) == 10 and hdr.nearest_rank(250, 10) == 10
    assert hdr.nearest_rank(np.float64(50.0), 7) == 4
    assert percentile_of_sorted([1, 2, 3], 99.9) == 3 and percentile_of_sorted([], 50) is None
    sorted_samples = sorted(SAMPLE_SETS["1,000 far apart"])
    assert percentile_of_sorted(sorted_samples, 99.9) == sorted_samples[998]


def test_an_empty_histogram_reports_nothing():
    histogram = new_histogram()
    assert percentiles_ms(histogram, [50]) == {} and summary_ms(histogram) == {}
    assert Distribution.from_counts(empty_counts()).summary_ms() == dict.fromkeys(["min", "p50", "p90", "p95", "p99", "p99.9", "max"])
    assert percentiles_of_counts(empty_counts(), [99]) == [None]


# -- merge ------------------------------------------------------------------------------------


def test_merging_many_histograms_equals_the_histogram_of_all_samples():
    rng = np.random.default_rng(6)
    shards = [rng.lognormal(np.log(rng.uniform(0.3, 50.0)), rng.uniform(0.2, 1.5), int(rng.integers(1, 2_000)))
              for _ in range(60)]
    shards.append(np.array([]))  # an interval with nothing in it
    whole = new_histogram()
    record_ms(whole, np.concatenate(shards))

    merged = new_histogram()  # as the master and thresholds merge: hdrh objects, after the wire
    counts = empty_counts()  # as the report merges: spans of decoded counts
    for shard in shards:
        one = new_histogram()
        record_ms(one, shard)
        merge_into(merged, decode(encode(one)))
        hdr.add_span(counts, decode_span(encode(one)))

    assert np.array_equal(np.frombuffer(merged.counts, dtype=np.int64), np.frombuffer(whole.counts, dtype=np.int64))
    assert np.array_equal(counts, np.frombuffer(whole.counts, dtype=np.int64))
    assert merged.total_count == whole.total_count == sum(len(s) for s in shards)
    assert summary_ms(merged) == summary_ms(whole)
    assert merged.get_min_value() == whole.get_min_value()  # hdrh's own add would make it 0 (empty target)
    assert merged.get_max_value() == whole.get_max_value()


def test_merging_a_histogram_of_another_layout_keeps_every_count():
    from hdrh.histogram import HdrHistogram

    other = HdrHistogram(1, 60_000_000, 2)
    for value in (5, 1_234, 99_999, 7_000_000):
        other.record_value(value, 3)
    merged = new_histogram()
    merge_into(merged, other)
    assert merged.total_count == 12
    assert [merged.get_count_at_value(other.get_value_from_index(other.get_counts_array_index(v))) for v in (5, 1_234)] == [3, 3]


# -- codec ------------------------------------------------------------------------------------


def test_the_codec_round_trips():
    histogram = new_histogram()
    record_ms(histogram, SAMPLE_SETS["3,000 Pareto"])
    text = encode(histogram)
    assert isinstance(text, str) and json.loads(json.dumps(text)) == text
    back = decode(text)
    assert back.equals(histogram) and back.total_count == histogram.total_count
    assert encode(back) == text
    assert np.array_equal(decode_counts(text), np.frombuffer(histogram.counts, dtype=np.int64))
    _, values = decode_span(text)
    assert values[0] and values[-1] and values.sum() == histogram.total_count
    empty = encode(new_histogram())
    assert decode(empty).total_count == 0 and len(decode_span(empty)[1]) == 0


@pytest.mark.parametrize("text", ["", "not base64 at all!", "SGVsbG8gd29ybGQ=", "HISTFAAAAB54nJNpmSzMwMDAxQABzFCaEUoxAQAEwgBK"[:30]])
def test_text_that_is_no_histogram_is_one_loadkit_error(text):
    with pytest.raises(HistogramError) as caught:
        decode(text)
    assert isinstance(caught.value, LoadkitError) and "\n" not in str(caught.value)
    with pytest.raises(HistogramError):
        decode_span(text)


# -- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", [(1, 3_600_000_000, 3), (1, 60_000_000, 2), (1000, 3_600_000_000, 3)])
def test_the_layout_is_hdrhs_own_index_to_value_mapping(layout):
    from hdrh.histogram import HdrHistogram

    template = HdrHistogram(*layout)
    mine = hdr.layout_of(*layout)
    assert mine.counts_len == template.counts_len
    lowest = [template.get_value_from_index(i) for i in range(template.counts_len)]
    assert mine.lowest.tolist() == lowest
    assert mine.highest.tolist() == [template.get_highest_equivalent_value(v) for v in lowest]


def test_the_layout_is_written_once():
    histogram = new_histogram()
    assert (histogram.lowest_trackable_value, histogram.highest_trackable_value, histogram.significant_figures) == (
        hdr.LOWEST_US, hdr.HIGHEST_US, hdr.SIGNIFICANT_FIGURES) == (1, 3_600_000_000, 3)
    assert hdr.UNIT == "µs" and hdr.standard_layout().counts_len == histogram.counts_len == 23_552


# -- one rule on one page ---------------------------------------------------------------------


def test_the_report_table_and_a_threshold_verdict_give_the_same_p99_and_p99_9(tmp_path):
    """A results folder written by the metrics writers; the report reads it, ``loadkit check`` judges it."""
    from loadkit.metrics._intervals import IntervalStore
    from loadkit.metrics._recorder import RequestRecorder
    from loadkit.report import build_report, load_run
    from loadkit.report._html import ms_text
    from loadkit.thresholds import evaluate
    from tests.unit.test_report import read_tables

    samples = SAMPLE_SETS["1,600 far apart"]
    seconds = np.array_split(samples, 4)
    recorder = RequestRecorder()
    with open(tmp_path / "metrics.jsonl", "w", encoding="utf-8") as out:
        store = IntervalStore(out)
        for second, values in enumerate(seconds):
            for value in values:
                recorder.on_request("SMTP", "send", float(value), 5120, None, {"phases": {"data": float(value) / 2}})
            store.add(1000.0 + second, 1001.0 + second, recorder.fold(recorder.take()))
        store.flush()
    (tmp_path / "run.json").write_text(json.dumps({"started_at": 1000.0, "stopped_at": 1004.0}))

    verdicts = {v.expression: v for v in evaluate(tmp_path, ["p99<1s", "p99.9<1s", "send:p99<1s", "phase.data:p99.9<1s"])}
    run = load_run(tmp_path)
    (row,) = run.requests
    expected = expected_ms(np.sort(samples))
    assert row.latency["p99"] == run.total.latency["p99"] == verdicts["p99<1s"].measured == verdicts["send:p99<1s"].measured == expected["p99"]
    assert row.latency["p99.9"] == verdicts["p99.9<1s"].measured == expected["p99.9"]
    (phase,) = run.phases
    assert phase.latency["p99.9"] == verdicts["phase.data:p99.9<1s"].measured == expected_ms(np.sort(samples / 2))["p99.9"]

    # as printed on the page
    summary = read_tables(build_report(tmp_path).read_text(encoding="utf-8"))["summary"]
    assert summary[0]["p99 ms"] == ms_text(verdicts["send:p99<1s"].measured)
    assert summary[0]["p99.9 ms"] == ms_text(verdicts["p99.9<1s"].measured)

    # each second's point of the series over time: that second's samples by the same rule
    frame = run.percentiles_over_time["SMTP send"]
    for index, values in enumerate(seconds):
        assert frame["p99"].iloc[index] == expected_ms(np.sort(values))["p99"]
