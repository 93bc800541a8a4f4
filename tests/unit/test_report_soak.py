"""The report of a long run: its charts have a bounded number of points, its numbers stay exact.

Two hours of one-second intervals, written through `loadkit.results`'
writer: the charts get one point per 12-second time bucket (at most
``MAX_POINTS``), and every total, the whole-run percentiles and the open
model's arrivals are those of every interval, checked against an exact merge
made here, histogram by histogram.

Ten hours and five minutes, written by the run's own store (`IntervalStore`:
metrics.jsonl and its minutes): the report and the check read the minutes,
and print what they print from every second of the same folder, byte for
byte, with the totals of every interval written.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from loadkit.hdr import decode_counts, encode, new_histogram, percentiles_of_counts, record_ms
from loadkit.metrics._intervals import IntervalStore
from loadkit.metrics._series import MergedCounts, MergedSeries
from loadkit.report import TOTAL_LABEL, load_run, read_metrics
from loadkit.report._html import render_page
from loadkit.report._metrics import MAX_POINTS
from loadkit.report._open_model import open_model_line
from loadkit.results import (
    METRICS_FILE,
    MINUTES_FILE,
    open_events,
    open_metrics,
    open_minutes,
    write_event,
    write_interval,
    write_run_json,
)
from loadkit.thresholds import evaluate_with_notes, format_table

START = 1_795_652_195.0
SECONDS = 7_200
NAMES = ("send", "deliver")
POOL = 12  # histograms per name, drawn from in turn: a long run written in a second


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    """The folder and what was written to it, summed here as it was written."""
    rng = random.Random(16)
    pool = {}
    for name in NAMES:
        for variant in range(POOL):
            histogram = new_histogram()
            record_ms(histogram, [rng.lognormvariate(1.5 + variant / 10, 0.6) for _ in range(rng.randint(1, 40))])
            pool[(name, variant)] = encode(histogram)
    service = encode(_histogram(rng, 25))
    folder = tmp_path_factory.mktemp("soak")
    written = {"ok": dict.fromkeys(NAMES, 0), "failed": dict.fromkeys(NAMES, 0),
               "counts": {name: np.zeros_like(decode_counts(service)) for name in NAMES},
               "service": np.zeros_like(decode_counts(service)), "offered": 0, "sent": 0, "dropped": 0}  # fmt: skip
    decoded = {key: decode_counts(text) for key, text in pool.items()}
    decoded_service = decode_counts(service)
    out = open_metrics(folder)
    for second in range(SECONDS):
        series = []
        for name in NAMES:
            variant = (second * 7 + len(name)) % POOL
            ok, failed = rng.randint(0, 50), rng.randint(0, 2)
            written["ok"][name] += ok
            written["failed"][name] += failed
            written["counts"][name] += decoded[(name, variant)]
            series.append({"kind": "request", "type": "SMTP", "name": name, "ok": ok, "failed": failed, "bytes": 0,
                           "errors": {"451 4.3.0 at RCPT": failed} if failed else {}, "histogram": pool[(name, variant)]})  # fmt: skip
        series.append({"kind": "phase", "type": "SMTP", "name": "service", "ok": 25, "failed": 0, "bytes": 0,
                       "errors": {}, "histogram": service})  # fmt: skip
        written["service"] += decoded_service
        offered = rng.randint(90, 110)
        dropped = rng.randint(0, 3)
        for kind_name, count in (("offered", offered), ("sent", offered - dropped), ("dropped", dropped)):
            written[kind_name] += count
            series.append({"kind": "open", "type": "arrivals", "name": kind_name, "ok": count, "failed": 0})
        write_interval(out, {"start": START + second, "end": START + second + 1, "users": 20, "series": series})
    out.close()
    return folder, written


@pytest.fixture(scope="module")
def data(soak):
    return read_metrics(soak[0] / METRICS_FILE)


@pytest.fixture(scope="module")
def run(soak):
    return load_run(soak[0])


def _histogram(rng, count):
    histogram = new_histogram()
    record_ms(histogram, [rng.lognormvariate(0.5, 0.4) for _ in range(count)])
    return histogram


def test_the_charts_have_a_bounded_number_of_points_and_say_what_one_spans(data, run):
    assert data.bucket_seconds == SECONDS // MAX_POINTS == 12
    assert len(data.timeline) == MAX_POINTS
    for frame in (*data.percentiles_over_time.values(), data.total_over_time, data.reply_codes):
        assert len(frame) == MAX_POINTS
    assert len(data.open_model.seconds) == MAX_POINTS
    assert "One point: the mean of 12 s." in open_model_line(data.open_model)
    assert run.percentiles_note == "Percentiles of each 12 s, from the merge of its histograms."


def test_coarsened_series_keep_the_exact_totals(soak, data):
    written = soak[1]
    timeline = data.timeline
    # Rates per bucket times the bucket's seconds give back every message, to the unit.
    ok = np.rint(timeline["ok_per_s"] * timeline["seconds"]).astype(int)
    failed = np.rint(timeline["failed_per_s"] * timeline["seconds"]).astype(int)
    assert int(ok.sum()) == sum(written["ok"].values())
    assert int(failed.sum()) == sum(written["failed"].values())
    codes = np.rint(data.reply_codes["451"] * timeline["seconds"]).astype(int)
    assert int(codes.sum()) == sum(written["failed"].values())
    for name in NAMES:
        totals = data.series[("request", "SMTP", name)]
        assert (totals.ok, totals.failed) == (written["ok"][name], written["failed"][name])
        assert np.array_equal(totals.counts, written["counts"][name])  # every interval's histogram, merged
    assert np.array_equal(data.series[("phase", "SMTP", "service")].counts, written["service"])
    facts = data.open_model
    assert facts.totals == {"offered": written["offered"], "sent": written["sent"], "dropped": written["dropped"]}
    for kind_name in ("offered", "sent", "dropped"):
        per_bucket = np.rint(np.array(facts.per_second[kind_name]) * 12).astype(int)
        assert int(per_bucket.sum()) == written[kind_name]


def test_whole_run_percentiles_are_those_of_the_exact_merge(soak, run):
    written = soak[1]
    merged = written["counts"]["send"] + written["counts"]["deliver"]
    p50, p99, p999 = (value / 1000.0 for value in percentiles_of_counts(merged, [50.0, 99.0, 99.9]))
    assert (run.total.latency["p50"], run.total.latency["p99"], run.total.latency["p99.9"]) == (p50, p99, p999)
    assert run.total.count == sum(written["ok"].values()) + sum(written["failed"].values())
    for row in run.requests:
        expected = percentiles_of_counts(written["counts"][row.name], [99.0])[0] / 1000.0
        assert row.latency["p99"] == expected
    assert run.open_model.corrected_p99 == p99
    assert run.open_model.service_p99 == percentiles_of_counts(written["service"], [99.0])[0] / 1000.0
    assert TOTAL_LABEL in run.percentiles_over_time


# -- longer than ten hours: read from the minutes -------------------------------------------------------

DAY_SECONDS = 10 * 3600 + 300
DAY_CHECKS = ("p99<20ms", "send:p95<10ms", "phase.service:p99<5ms", "fail_ratio<1%",
              "requests>=1000", "rps>10", "dropped<10", "max<1s", "mean<8")


class PooledSeries(MergedSeries):
    """A series drawn from a pool: its counts decoded once and shared, its text written as it is,
    so ten hours of seconds go through the store in seconds (each minute is still merged and encoded)."""

    __slots__ = ("text",)

    def __init__(self, kind, type_, name, pooled, ok, failed, errors):
        super().__init__(kind, type_, name)
        self.histogram, self.text = pooled
        self.ok, self.failed, self.errors = ok, failed, errors

    def to_json(self) -> dict:
        return {"kind": self.kind, "type": self.type, "name": self.name, "ok": self.ok, "failed": self.failed,
                "bytes": self.bytes, "errors": self.errors, "histogram": self.text}

    def release(self) -> None:
        pass  # the pool's


def _pooled(text: str) -> tuple[MergedCounts, str]:
    counts = MergedCounts()
    counts.add_encoded(text)
    return counts, text


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """(the folder, what was written to it summed here, the report and check read from the minutes, the same
    read from every second: the same folder with its minutes put aside)."""
    rng = random.Random(6)
    pool = {(name, variant): _pooled(encode(_histogram(rng, rng.randint(1, 60)))) for name in NAMES for variant in range(POOL)}
    service = _pooled(encode(_histogram(rng, 30)))
    empty = _pooled(encode(new_histogram()))
    written = {"ok": 0, "failed": 0, "offered": 0, "dropped": 0, "counts": np.zeros_like(decode_counts(service[1]))}
    folder = tmp_path_factory.mktemp("day") / "run"
    folder.mkdir()
    events = open_events(folder)
    write_event(events, "run_started", at=START)
    out, minutes_out = open_metrics(folder), open_minutes(folder)
    store = IntervalStore(out, minutes_out=minutes_out)
    for second in range(DAY_SECONDS):
        series = []
        for name in NAMES:
            variant = (second * 5 + len(name)) % POOL
            ok, failed = rng.randint(0, 40), rng.randint(0, 1)
            written["ok"] += ok
            written["failed"] += failed
            written["counts"] += pool[(name, variant)][0].counts
            errors = {("451 4.3.0 at RCPT" if second % 3 else "550 5.1.1 at RCPT"): failed} if failed else {}
            series.append(PooledSeries("request", "SMTP", name, pool[(name, variant)], ok, failed, errors))
        series.append(PooledSeries("phase", "SMTP", "service", service, 30, 0, {}))
        offered = rng.randint(30, 45)
        dropped = int(rng.random() < 0.0001)
        written["offered"] += offered
        written["dropped"] += dropped
        for name, count in (("offered", offered), ("sent", offered - dropped), ("dropped", dropped)):
            series.append(PooledSeries("open", "open", name, empty, count, 0, {}))
        start = START + second
        end = start + (0.25 if second == DAY_SECONDS - 1 else 1.0)
        store.add(start, end, series)
        store.set_users(start, end, 20 + second // 3600)
        store.flush(end)
    store.flush()
    out.close()
    minutes_out.close()
    write_event(events, "run_stopped", at=START + DAY_SECONDS)
    events.close()
    write_run_json(folder, command="test", target="smtp://127.0.0.1:2525", users=30, duration=DAY_SECONDS,
                   started_at=START, stopped_at=START + DAY_SECONDS)

    def read():
        run = load_run(folder)
        return read_metrics(folder / METRICS_FILE), run, render_page(run, {}), evaluate_with_notes(folder, DAY_CHECKS)

    from_minutes = read()
    aside = folder.parent / "minutes-aside.jsonl"
    (folder / MINUTES_FILE).rename(aside)
    try:
        every_second = read()
    finally:
        aside.rename(folder / MINUTES_FILE)
    return folder, written, from_minutes, every_second


def test_a_run_of_more_than_ten_hours_is_read_from_its_minutes_in_buckets_of_whole_minutes(day):
    _folder, _written, (minutes, run, _page, (verdicts, _notes)), (seconds, full_run, _, (full_verdicts, _)) = day
    assert (minutes.source, seconds.source) == (MINUTES_FILE, METRICS_FILE)
    assert (minutes.intervals, seconds.intervals) == (DAY_SECONDS // 60, DAY_SECONDS)  # 605 whole minutes
    # 36,300 s over 600 points is 61 s a point: two whole minutes, 303 points
    assert minutes.bucket_seconds == seconds.bucket_seconds == 120
    assert len(minutes.timeline) == len(seconds.timeline) == 303
    assert run.percentiles_note.endswith(f"Read from {MINUTES_FILE}, the run's intervals merged per minute as it wrote them.")
    assert full_run.percentiles_note == "Percentiles of each 120 s, from the merge of its histograms."
    assert {v.source for v in verdicts if v.source} == {MINUTES_FILE}
    assert {v.source for v in full_verdicts if v.source} == {METRICS_FILE}


def test_a_run_read_from_its_minutes_prints_what_every_second_prints(day):
    _folder, _written, (minutes, run, page, (verdicts, notes)), (seconds, full_run, full_page, (full_verdicts, full_notes)) = day
    assert page == full_page  # every table and number of the report, byte for byte
    assert format_table(verdicts, notes) == format_table(full_verdicts, full_notes)  # what `loadkit check` prints
    assert [(v.expression, v.measured, v.passed, v.error) for v in verdicts] == \
        [(v.expression, v.measured, v.passed, v.error) for v in full_verdicts]
    assert all(v.measured is not None and v.error is None for v in verdicts)
    for frame, full in ((minutes.timeline, seconds.timeline), (minutes.total_over_time, seconds.total_over_time),
                        (minutes.reply_codes, seconds.reply_codes)):
        assert frame.equals(full)
    for key, frame in seconds.percentiles_over_time.items():
        assert minutes.percentiles_over_time[key].equals(frame)
    assert minutes.open_model.per_second == seconds.open_model.per_second
    assert minutes.open_model.totals == seconds.open_model.totals


def test_a_run_read_from_its_minutes_keeps_the_totals_of_every_interval(day):
    _folder, written, (minutes, run, _page, _checks), _every_second = day
    requests = [totals for key, totals in minutes.series.items() if key[0] == "request"]
    assert sum(t.ok for t in requests) == written["ok"] and sum(t.failed for t in requests) == written["failed"]
    assert np.array_equal(sum(t.counts for t in requests), written["counts"])
    assert run.total.count == written["ok"] + written["failed"]
    p50, p99 = (value / 1000.0 for value in percentiles_of_counts(written["counts"], [50.0, 99.0]))
    assert (run.total.latency["p50"], run.total.latency["p99"]) == (p50, p99)
    assert minutes.open_model.totals["offered"] == written["offered"]
    assert minutes.open_model.totals["dropped"] == written["dropped"]
