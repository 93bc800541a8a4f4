"""The report of a long run: its charts have a bounded number of points, its numbers stay exact.

Two hours of one-second intervals, written through `loadkit.results`'
writer: the charts get one point per 12-second time bucket (at most
``MAX_POINTS``), and every total, the whole-run percentiles and the open
model's arrivals are those of every interval, checked against an exact merge
made here, histogram by histogram.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from loadkit.hdr import decode_counts, encode, new_histogram, percentiles_of_counts, record_ms
from loadkit.report import TOTAL_LABEL, load_run, read_metrics
from loadkit.report._metrics import MAX_POINTS
from loadkit.report._open_model import open_model_line
from loadkit.results import METRICS_FILE, open_metrics, write_interval

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
