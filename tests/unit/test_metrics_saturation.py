"""The host probe's saturation watch, and Locust's CPU warning and phase rows in a run's records."""

from __future__ import annotations

import json
from types import SimpleNamespace

from loadkit.metrics._recorder import RequestRecorder
from loadkit.metrics._run import RunRecorder
from loadkit.probes._host import HostProbe, SaturationWatch
from tests.unit.test_metrics_recorder import (
    RequestEvent,
    environment,
    fire,
    locust_total,
)


def test_a_stretch_at_95_percent_is_said_once_when_it_reaches_3_seconds():
    watch = SaturationWatch()
    assert watch.add(99.0, 0.0, 1.0) is None
    assert watch.add(95.0, 1.0, 2.0) is None
    said = watch.add(100.0, 2.0, 3.0)
    assert said is not None and "for 3 s" in said and "peak 100%" in said
    assert watch.add(100.0, 3.0, 4.0) is None  # once per stretch
    assert watch.add(94.9, 4.0, 5.0) is None  # the stretch ends
    assert [watch.add(96.0, t, t + 1.0) for t in (5.0, 6.0)] == [None, None]
    assert watch.add(96.0, 7.0, 8.0) is not None  # a new stretch, said again


def test_a_dip_below_95_percent_starts_the_count_again():
    watch = SaturationWatch()
    results = [watch.add(cpu, t, t + 1.0) for t, cpu in enumerate([99, 99, 80, 99, 99])]
    assert results == [None] * 5


def test_the_host_probe_calls_back_on_saturation(monkeypatch):
    import psutil

    said = []
    clock = iter(float(t) for t in range(100))
    probe = HostProbe(on_saturated=said.append, clock=lambda: next(clock))
    monkeypatch.setattr(psutil, "cpu_percent", lambda *_args, **_kwargs: 100.0)
    rows = [probe.sample() for _ in range(4)]
    assert [row["cpu_percent"] for row in rows] == [100.0] * 4
    assert len(said) == 1 and "for 3 s" in said[0]


def with_cpu_warning(env):
    env.events.cpu_warning = RequestEvent()
    return env


def test_locusts_cpu_warning_on_a_local_runner_is_a_generator_event(tmp_path):
    env = with_cpu_warning(environment())
    run = RunRecorder(env, tmp_path).start(ticking=False)
    env.events.cpu_warning.fire(environment=env, cpu_usage=96.4)
    run.stop()
    env.events.cpu_warning.fire(environment=env, cpu_usage=99.0)  # after the run: not its business
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    (cpu,) = [e for e in events if e["kind"] == "generator_cpu_high"]
    assert "96%" in cpu["detail"] and events[0]["time"] <= cpu["time"] <= events[-1]["time"]
    assert env.events.cpu_warning.listeners == []


def test_phase_rows_are_left_out_of_locusts_count(tmp_path):
    env = environment()
    def entry(requests, failures=0):
        return SimpleNamespace(num_requests=requests, num_failures=failures)
    env.stats = SimpleNamespace(entries={("send", "SMTP"): entry(10, 1), ("mail", "SMTP-phase"): entry(10),
                                         ("rcpt", "SMTP-phase"): entry(10)})
    run = RunRecorder(env, tmp_path, RequestRecorder()).start(ticking=False)
    fire(env.events.request.fire, 9)
    fire(env.events.request.fire, 1, exception=ValueError("boom"))
    run.stop(locust_total=locust_total(30, 1))
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert "count_mismatch" not in kinds


def test_a_real_mismatch_is_still_said(tmp_path):
    env = environment()
    env.stats = SimpleNamespace(entries={})
    run = RunRecorder(env, tmp_path).start(ticking=False)
    run.stop(locust_total=locust_total(5, 0))
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["detail"] for e in events if e["kind"] == "count_mismatch"] == ["loadkit counted 0 requests (0 failed), Locust 5 (0 failed)"]
