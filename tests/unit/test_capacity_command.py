"""`loadkit capacity`'s own parts: its settings, the queue slope, a step read from a results folder, JUnit."""

from __future__ import annotations

import json
from argparse import Namespace

import pytest

from loadkit.capacity import CapacityResult, SearchSettings, Step, StepResult, Verdict
from loadkit.capacity.command import queue_growth, read_step, settings_from, write_junit
from loadkit.errors import UsageError
from loadkit.hdr import encode, new_histogram, record_ms


def args(**overrides) -> Namespace:
    values = {"step_time": "20s", "confirm": "1m", "step": "x2", "start": 50.0, "precision": 0.05, "max_rate": None,
              "max_steps": 30}
    values.update(overrides)
    return Namespace(**values)


def test_step_multiplies_or_adds_and_bad_values_are_one_line():
    settings = settings_from(args(step="x1.5", step_time="10s", confirm="2m"))
    assert settings.factor == 1.5 and settings.step is None and settings.step_duration == 10 and settings.confirm == 120
    assert settings_from(args(step="+25")).step == 25
    with pytest.raises(UsageError, match="x1.5"):
        settings_from(args(step="1.5"))
    with pytest.raises(UsageError, match="duration"):
        settings_from(args(step_time="soon"))


def test_queue_growth_is_the_slope_of_the_postfix_total():
    rows = [{"time": 100.0 + t, "probe": "postfix", "total": 3 * t} for t in range(10)]
    rows.append({"time": 105.0, "probe": "host", "total": 999})
    assert queue_growth(rows) == pytest.approx(3.0)
    assert queue_growth(rows[:1]) is None
    assert queue_growth([{"time": 1.0, "probe": "postfix", "error": "postqueue: no"}]) is None


def _series(kind, type_, name, ok, failed=0, times=()):
    histogram = new_histogram()
    record_ms(histogram, list(times))
    return {"kind": kind, "type": type_, "name": name, "ok": ok, "failed": failed, "bytes": 0, "errors": {},
            "histogram": encode(histogram) if times else ""}


def test_a_step_is_read_from_its_results_folder(tmp_path):
    lines = []
    for second in range(10):
        lines.append({"start": 1000.0 + second, "end": 1001.0 + second, "series": [
            _series("request", "SMTP", "send", 19, 1, [50.0] * 19 + [400.0]),
            _series("phase", "SMTP", "service", 20, 0, [10.0] * 20),
            _series("phase", "SMTP", "lag", 20, 0, [40.0] * 20),
            _series("open", "open", "offered", 20), _series("open", "open", "sent", 20),
        ]})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp_path / "events.jsonl").write_text("")
    (tmp_path / "run.json").write_text(json.dumps({"open_model": {"generator_cpu": 30.0, "generator_demand": 95.0}}))
    step = read_step(tmp_path, duration=10.0, cpu=5.0)
    assert step.offered == 20 and step.achieved == 20 and step.accepted == 19
    assert step.error_ratio == pytest.approx(0.05)
    assert step.corrected_p50 == pytest.approx(50, rel=0.01) and step.corrected_p99 == pytest.approx(400, rel=0.01)
    assert step.service_p99 == pytest.approx(10, rel=0.01) and step.measure("lag.p99") == pytest.approx(40, rel=0.01)
    assert step.generator_cpu == 95.0 and step.generator_saturated  # used or waited for: 95% of a core
    assert step.queue_growth is None  # no probe: a queue limit fails, never passes silently


def test_junit_has_one_case_per_step_and_one_for_the_verdict(tmp_path):
    held = Step("ramp", 50, 10, StepResult(offered=50, duration=10, achieved=50), [])
    result = CapacityResult(SearchSettings(), ["p99<200ms"], [held], Verdict("no-rate-held", reason="p99<200ms"))
    text = write_junit(result, tmp_path).read_text()
    assert text.count("<testcase") == 2 and 'failures="1"' in text and "no-rate-held" in text
