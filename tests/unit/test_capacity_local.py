"""A capacity step in this process: StepMeter's arithmetic, and a real-time search against a gevent fake server."""

from __future__ import annotations

import statistics
import time

import gevent
import pytest
from gevent.lock import Semaphore

from loadkit.capacity import CAPACITY, SearchSettings, StepMeter, local_step_runner, search
from loadkit.open_model import Outcome, RateCounter
from loadkit.open_model_runner import RunSummary


class FakeClock:
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self):
        return self.value


def test_the_meter_turns_outcomes_into_a_step_result():
    cpu, wall = FakeClock(10.0), FakeClock(100.0)
    meter = StepMeter(cpu_clock=cpu, clock=wall)
    for k in range(100):  # sent 10 ms late, 5 ms of service, one in ten failed
        error = OSError("refused") if k % 10 == 0 else None
        meter.record(Outcome(k, intended=k * 0.01, sent=k * 0.01 + 0.010, done=k * 0.01 + 0.015, slot=0, error=error))
    counts = RateCounter()
    for k in range(100):
        counts.count_offered(k * 0.01)
        counts.count_started(k * 0.01)
    counts.count_offered(0.995)
    counts.count_dropped(0.995)
    cpu.value, wall.value = 10.5, 102.0  # a quarter of a core
    result = meter.result(RunSummary(counts, elapsed=1.0, errors=10, unfinished=0), {"queue_growth": 2.0, "e2e.p99": 40})
    assert (result.offered, result.achieved, result.accepted, result.dropped) == (101, 100, 90, 1)
    assert result.error_ratio == pytest.approx(0.1) and result.errors == {"OSError": 10}
    assert result.corrected_p99 == pytest.approx(15, rel=0.001) and result.service_p50 == pytest.approx(5, rel=0.001)
    assert result.measures["lag.p99"] == pytest.approx(10, rel=0.001) and result.measures["e2e.p99"] == 40
    assert result.queue_growth == 2.0 and "queue_growth" not in result.measures
    assert result.generator_cpu == pytest.approx(25) and not result.generator_saturated
    assert result.measure("corrected.p99") == result.corrected_p99


def test_a_step_that_finished_nothing_measures_no_latency():
    meter = StepMeter()
    result = meter.result(RunSummary(RateCounter(), elapsed=1.0, errors=0, unfinished=0))
    assert result.corrected_p99 is None and result.error_ratio is None
    assert result.measure("corrected.p99") is None  # a latency limit fails as not measured


def fake_server(sessions: int, service: float, served: list | None = None):
    """At most `sessions` messages served at once, `service` seconds each: a ceiling of sessions/service.
    Each message's real service time goes into `served`: a busy machine's sleeps last longer."""
    slots = Semaphore(sessions)

    def send(arrival):
        with slots:
            started = time.monotonic()
            gevent.sleep(service)
            if served is not None:
                served.append(time.monotonic() - started)

    return send


def test_a_local_step_below_and_above_the_ceiling():
    run_step = local_step_runner(fake_server(4, 0.02), policy="queue")  # 200/s
    calm = run_step(50, 1.0)
    assert calm.offered == calm.achieved == 50
    assert 19 <= calm.service_p50 <= 40 and calm.corrected_p50 < 60
    swamped = run_step(400, 1.0)  # twice the ceiling: half of it waits in the server
    assert swamped.offered == 400
    assert swamped.corrected_p99 > 300 and swamped.corrected_p99 > 5 * calm.corrected_p99


def test_a_real_time_search_finds_a_gevent_servers_ceiling():
    served = []
    run_step = local_step_runner(fake_server(4, 0.02, served), policy="queue")  # 200/s on a quiet machine
    settings = SearchSettings(start=25, step_duration=1.0, confirm=2.0, precision=0.05, max_steps=14)
    result = search(run_step, ["p99<100ms"], settings)
    assert result.verdict.status == CAPACITY, result.verdict.reason
    # the ceiling the server really had: its sleeps as they lasted, the slow ones too (sessions / mean time)
    ceiling = 4 / statistics.mean(served)
    assert 0.9 * ceiling <= result.verdict.capacity <= 1.05 * ceiling, (result.verdict.capacity, ceiling)
    assert len(result.steps) <= 14
