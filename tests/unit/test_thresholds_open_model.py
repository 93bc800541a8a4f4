"""Thresholds on an open-model run: p99 is corrected, service.p99 and lag.p99 are phases, dropped and rate_reached."""

from __future__ import annotations

import json

from loadkit.hdr import encode, new_histogram, record_ms
from loadkit.thresholds import evaluate, parse


def _series(kind, name, ok, times=()):
    histogram = new_histogram()
    record_ms(histogram, list(times))
    return {"kind": kind, "type": "open" if kind == "open" else "SMTP", "name": name, "ok": ok, "failed": 0,
            "bytes": 0, "errors": {}, "histogram": encode(histogram) if times else ""}


def test_service_and_lag_are_read_as_their_phases():
    assert parse("service.p99<50ms").scope == "phase.service"
    assert parse("lag.p(95)<=1s").scope == "phase.lag" and parse("lag.p(95)<=1s").limit == 1000
    assert parse("service.p99<50ms").expression == "service.p99<50ms"


def test_open_model_measures_against_a_results_folder(tmp_path):
    line = {"start": 1.0, "end": 2.0, "series": [
        _series("request", "send", 10, [900.0] * 10), _series("phase", "service", 10, [20.0] * 10),
        _series("phase", "lag", 10, [880.0] * 10), _series("open", "offered", 12), _series("open", "sent", 10),
        _series("open", "dropped", 2)]}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    (tmp_path / "events.jsonl").write_text(json.dumps({"time": 1.5, "kind": "rate_not_reached", "worker": None,
                                                       "detail": "sent 10 of 12"}) + "\n")
    (tmp_path / "run.json").write_text(json.dumps({"started_at": 1.0, "stopped_at": 2.0}))
    verdicts = {v.expression: v for v in evaluate(
        tmp_path, ["p99<500ms", "service.p99<50ms", "lag.p99<500ms", "dropped==0", "rate_reached"])}
    assert verdicts["p99<500ms"].status == "failed"  # the corrected latency, 900 ms
    assert verdicts["service.p99<50ms"].status == "passed"
    assert verdicts["lag.p99<500ms"].status == "failed"
    assert verdicts["dropped==0"].status == "failed" and verdicts["dropped==0"].measured == 2
    assert verdicts["rate_reached"].status == "failed"


def test_dropped_in_a_closed_model_run_is_never_measured(tmp_path):
    line = {"start": 1.0, "end": 2.0, "series": [_series("request", "send", 10, [9.0] * 10)]}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    (tmp_path / "events.jsonl").write_text("")
    (tmp_path / "run.json").write_text(json.dumps({"started_at": 1.0, "stopped_at": 2.0}))
    verdict = next(v for v in evaluate(tmp_path, ["dropped==0"]) if v.expression == "dropped==0")
    assert verdict.status != "passed" and "not an open-model run" in (verdict.error or "")
