"""A master merges workers' reports as counts, and writes what merging hdrh histograms wrote.

Reports are built by the workers' own code (`RequestRecorder.fold`,
`wire_series`); the same reports go through the master's path
(`IntervalStore.add_json`, histograms added as counts, encoded once per
interval at `WRITE_LEVEL`) and through the path it replaced
(`Series.from_json`, one hdrh histogram per series, merged with
`merge_into`, encoded by hdrh): metrics.jsonl must come out the same, every
histogram decoding to the same counts (the zlib streams differ by level).
"""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest

from loadkit import hdr
from loadkit.metrics._intervals import IntervalStore
from loadkit.metrics._open_model import OPEN
from loadkit.metrics._recorder import RequestRecorder
from loadkit.metrics._run import RunRecorder
from loadkit.metrics._series import REQUEST, MergedSeries, Series
from loadkit.metrics._worker import wire_series

PHASES = ("connect", "banner", "helo", "envelope", "data", "end-of-data", "quit")


class Refused(Exception):
    def __init__(self, code: int, phase: str | None):
        super().__init__(code)
        self.code, self.phase = code, phase

    def __repr__(self) -> str:
        return f"{self.code} at {self.phase}"


def worker_series(rng: random.Random, messages: int) -> list[dict]:
    """One worker's series of one interval, as it sends them."""
    recorder = RequestRecorder()
    for number in range(messages):
        phases = {phase: rng.lognormvariate(0.0, 1.5) for phase in PHASES}
        exception = None
        roll = rng.random()
        if roll < 0.05:
            exception = Refused(550, "envelope")
            for phase in ("data", "end-of-data", "quit"):
                del phases[phase]
        elif roll < 0.07:
            exception = Refused(421, "connect")  # failed before its phase was timed
            phases = {}
        elif roll < 0.08:
            exception = Refused(451, None)  # no phase at all
        elif roll < 0.09:
            phases["quit"] = 3_600_000.0 * 2  # beyond the histogram's hour: clamped
        recorder.on_request("SMTP", ("send", "send-large")[number % 2], sum(phases.values()) or 0.5,
                            5120, exception=exception, context={"phases": phases} if phases else None)
    series = wire_series(RequestRecorder.fold(recorder.take()))
    if rng.random() < 0.5:  # the open model's count-only series ride along
        series += wire_series([Series(OPEN, OPEN, name, ok=rng.randrange(50)) for name in ("offered", "sent", "dropped")])
    return series


def counts_of(value):
    """JSON with every encoded histogram replaced by its counts: (first index, counts to the last non-zero)."""
    if isinstance(value, dict):
        return {key: span_of(one) if key in ("histogram", "failed_histogram") else counts_of(one)
                for key, one in value.items()}
    if isinstance(value, list):
        return [counts_of(one) for one in value]
    return value


def span_of(encoded: str) -> tuple[int, list[int]]:
    first, values = hdr.decode_span(encoded)
    return first, values.tolist()


def lines_as_counts(text: str) -> list:
    return [counts_of(json.loads(line)) for line in text.splitlines()]


def reports(workers: int, seconds: int, seed: int = 5):
    """(start, end, series) in arrival order: every worker, every second, some seconds in two parts."""
    rng = random.Random(seed)
    out = []
    for second in range(seconds):
        for _worker in range(workers):
            start = 1000.0 + second
            if rng.random() < 0.3:  # cut by a report: two parts of the same interval
                out.append((start, start + 0.4, worker_series(rng, rng.randrange(0, 20))))
            out.append((start, start + 1.0, worker_series(rng, rng.randrange(1, 60))))
    return out


def replay(feed, add) -> tuple[str, IntervalStore]:
    """Feed reports to a master's store; a tick every second writes what settled (2 s), the rest at the end."""
    out = io.StringIO()
    store = IntervalStore(out, settle=2.0)
    next_tick = None
    for start, end, series in feed:
        if next_tick is None:
            next_tick = start + 1.0
        while start >= next_tick + 1.0:
            store.flush(next_tick)
            next_tick += 1.0
        add(store, start, end, series)
    # a worker cut off for a while: its old seconds arrive after they were written
    store.flush(next_tick + 10.0)
    late_start, late_end, late_series = feed[0]
    add(store, late_start, late_end, late_series)
    store.flush()
    return out.getvalue(), store


def old_add(store, start, end, series):
    store.add(start, end, [Series.from_json(one) for one in series])


def new_add(store, start, end, series):
    store.add_json(start, end, series)


def test_the_master_writes_the_counts_merging_hdrh_histograms_wrote():
    feed = reports(workers=6, seconds=8)
    old_text, old_store = replay(feed, old_add)
    new_text, new_store = replay(feed, new_add)
    assert new_text.count("\n") >= 8
    assert '"failed_histogram"' in new_text and '"open"' in new_text
    new_lines, old_lines = lines_as_counts(new_text), lines_as_counts(old_text)
    assert new_lines == old_lines
    filled = [one["histogram"] for line in new_lines for one in line["series"] if one["histogram"][1]]
    assert len(filled) >= 8 * len(PHASES)  # counts are compared, not only empty histograms
    assert new_text != old_text  # the same counts, at another zlib level
    assert new_store.totals.by_key == old_store.totals.by_key
    assert new_store.totals.errors == old_store.totals.errors
    assert new_store.late == old_store.late > 0


def test_the_merged_state_is_the_direct_sum_of_every_series_sent():
    feed = reports(workers=4, seconds=6, seed=11)
    out = io.StringIO()
    store = IntervalStore(out, settle=2.0)
    for start, end, series in feed:
        store.add_json(start, end, series)
        store.flush(start - 1.0)  # some written, some open: merged() covers both
    assert store.open and store.written
    expected: dict = {}
    for _start, _end, series in feed:
        for one in series:
            key = (one["kind"], one["type"], one["name"])
            sums = expected.setdefault(key, {"ok": 0, "failed": 0, "bytes": 0, "counts": hdr.empty_counts(),
                                             "failed_counts": hdr.empty_counts()})
            sums["ok"] += one["ok"]
            sums["failed"] += one["failed"]
            sums["bytes"] += one["bytes"]
            sums["counts"] += hdr.decode_counts(one["histogram"])
            if "failed_histogram" in one:
                sums["failed_counts"] += hdr.decode_counts(one["failed_histogram"])
    merged = store.merged()
    assert set(merged) == set(expected)
    for key, sums in expected.items():
        series = merged[key]
        assert (series.ok, series.failed, series.bytes) == (sums["ok"], sums["failed"], sums["bytes"])
        counts = series.histogram.counts if series.histogram.counts is not None else hdr.empty_counts()
        assert np.array_equal(counts, sums["counts"]), key
        assert series.histogram.total == int(sums["counts"].sum())
        failed = series.failed_histogram
        assert (int(failed.counts.sum()) if failed is not None and failed.total else 0) == int(sums["failed_counts"].sum())
    requests = sum(s["ok"] + s["failed"] for k, s in expected.items() if k[0] == REQUEST)
    assert sum(series.ok + series.failed for key, series in merged.items() if key[0] == REQUEST) == requests
    errors: dict = {}  # errors.csv counts requests' errors only (a phase's are the same failures again)
    for _start, _end, series in feed:
        for one in series:
            for error, count in one["errors"].items() if one["kind"] == REQUEST else ():
                errors[(one["type"], one["name"], error)] = errors.get((one["type"], one["name"], error), 0) + count
    assert store.totals.errors == errors and len(errors) >= 3


def test_worker_shares_and_totals_come_from_the_reports_counts(tmp_path):
    feed = reports(workers=3, seconds=3, seed=2)
    environment = type("Environment", (), {"events": object(), "runner": None})()
    run = RunRecorder(environment, tmp_path, None, settle=2.0).start(ticking=False)
    shares: dict[str, int] = {}
    for number, (start, end, series) in enumerate(feed):
        worker = f"w{number % 3}"
        run.add_worker_report(worker, {"intervals": [{"start": start, "end": end, "series": series}]})
        shares[worker] = shares.get(worker, 0) + sum(s["ok"] + s["failed"] for s in series if s["kind"] == REQUEST)
    facts = run.stop()
    assert run.worker_shares == shares
    assert facts["recorded_requests"] == sum(shares.values())
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    written = sum(s["ok"] + s["failed"] for line in lines for s in line["series"] if s["kind"] == REQUEST)
    assert written == sum(shares.values())


# -- the histogram fast paths ----------------------------------------------------------------------


@pytest.mark.parametrize("values_ms", [
    [], [0.001], [3_600_000.0], [0.0005, 7_200_000.0],
    list(np.random.default_rng(1).lognormal(0.0, 2.0, 5_000)),
])
def test_counts_encode_to_the_text_of_the_histogram_holding_them(values_ms):
    histogram = hdr.new_histogram()
    hdr.record_ms(histogram, values_ms)
    text = hdr.encode(histogram)
    counts = hdr.empty_counts()
    total, first, last = hdr.add_encoded(counts, text)
    assert total == histogram.total_count == int(counts.sum())
    assert np.array_equal(counts, hdr.decode_counts(text))
    assert hdr.encode_counts(counts) == text
    assert hdr.encode_counts(counts, last) == text
    if total:
        nonzero = np.flatnonzero(counts)
        assert (first, last) == (nonzero[0], nonzero[-1])


def test_adding_encoded_histograms_adds_and_leaves_nothing_behind():
    rng = np.random.default_rng(4)
    parts = [rng.lognormal(1.0, 1.0, size) for size in (10, 1000, 1)]
    counts = hdr.empty_counts()
    merged = hdr.new_histogram()
    for values in parts:
        one = hdr.new_histogram()
        hdr.record_ms(one, values)
        hdr.add_encoded(counts, hdr.encode(one))
        hdr.merge_into(merged, one)
    assert hdr.encode_counts(counts) == hdr.encode(merged)
    assert not hdr._scratch().counts.any()


def test_another_layout_is_rebucketed_and_garbage_is_one_clear_error():
    from hdrh.histogram import HdrHistogram

    other = HdrHistogram(1, 60_000_000, 2)
    for value in (5, 500, 50_000):
        other.record_value(value)
    counts = hdr.empty_counts()
    assert hdr.add_encoded(counts, other.encode().decode("ascii"))[0] == 3
    assert np.array_equal(counts, hdr.decode_counts(other.encode()))
    with pytest.raises(hdr.HistogramError, match="not an encoded HdrHistogram"):
        hdr.add_encoded(counts, "bm90IGEgaGlzdG9ncmFt")
    assert not hdr._scratch().counts.any()


def test_a_merged_series_takes_local_series_and_merged_ones_alike():
    rng = random.Random(9)
    parts = [Series.from_json(one) for one in worker_series(rng, 40) + worker_series(rng, 40)]
    by_key: dict = {}
    for part in parts:
        by_key.setdefault(part.key, []).append(part)
    for key, same in by_key.items():
        reference = Series.from_json(same[0].to_json())
        for part in same[1:]:
            reference.merge(part)
        merged = MergedSeries(*key)
        half = MergedSeries(*key)
        for number, part in enumerate(same):
            (merged if number % 2 else half).merge(part)
        merged.merge(half)
        assert counts_of(merged.to_json()) == counts_of(reference.to_json())


def test_the_merged_state_is_a_copy_that_later_seconds_do_not_change():
    feed = reports(workers=2, seconds=5, seed=3)
    store = IntervalStore(io.StringIO(), settle=0.0)
    def text(state) -> str:
        return json.dumps([{" ".join(k): s.to_json() for k, s in part.items()}
                           for part in (state.series, state.last_second or {})])

    states = []
    for start, end, series in feed:
        store.add_json(start, end, series)
        store.flush(start)  # every second before this one is written
        states.append((store.state({"w0": 1}), text(store.state())))
    assert len({text for _state, text in states}) > 3
    for state, written in states:
        assert text(state) == written
    last = states[-1][0]
    assert last.worker_shares == {"w0": 1} and last.last_start == 1003.0
    key = ("request", "SMTP", "send")
    assert last.totals[key][0] == last.series[key].ok > last.last_second[key].ok > 0
    assert set(last.series[key].histogram.percentiles_ms([50.0, 99.0])) == {50.0, 99.0}
