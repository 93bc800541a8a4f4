"""A master waits for each worker's final report; one that never comes is recorded and fails no_worker_lost.

The workers are fakes: a Locust master's `clients` (id -> node with .id and
.state) and a `send_message` that reaches them. Locust is not imported (see
test_metrics_integrity); the integration tests run the same code between a
real master and real workers.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from loadkit.metrics._run import RunRecorder
from loadkit.metrics._worker import FINAL_REPORT_MISSING, FinalReports
from loadkit.thresholds import evaluate

STATE_RUNNING, STATE_MISSING = "running", "missing"


class FakeClock:
    """time.monotonic and gevent.sleep of one test: sleeping moves the clock, and lets the workers act."""

    def __init__(self, on_sleep=None):
        self.now = 1000.0
        self.on_sleep = on_sleep or (lambda now: None)
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        self.on_sleep(self.now)


def clients(**states: str) -> dict:
    return {worker: SimpleNamespace(id=worker, state=state) for worker, state in states.items()}


def environment():
    return SimpleNamespace(events=SimpleNamespace(), runner=SimpleNamespace(user_count=0))


def events_of(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def test_a_worker_that_never_sends_its_final_report_is_waited_for_then_recorded(tmp_path):
    workers = clients(prompt=STATE_RUNNING, silent=STATE_RUNNING)
    reports = FinalReports(STATE_MISSING)
    reports.expect(workers)
    asked = []
    # "prompt" answers a second after it was asked; "silent" is alive but never sends its last report.
    clock = FakeClock(on_sleep=lambda now: now >= 1001.0 and reports.receive("prompt", {"final": True}))

    left = reports.wait(workers, asked.append, timeout=30.0, sleep=clock.sleep, clock=clock)

    assert asked == ["prompt", "silent"]
    assert left == ["silent"]
    assert 30.0 <= clock.slept < 30.1  # the whole bound, not Locust's half second

    run = RunRecorder(environment(), tmp_path).start(ticking=False)
    assert reports.record_missing(run.events, lost=set()) == ["silent"]
    run.stop()
    missing = [e for e in events_of(tmp_path) if e["kind"] == FINAL_REPORT_MISSING]
    assert [(e["worker"], e["detail"]) for e in missing] == [
        ("silent", "no final report within 30 s after the test stopped: its last numbers are not counted")]
    (verdict,) = [v for v in evaluate(tmp_path, ["no_worker_lost"]) if v.expression == "no_worker_lost"]
    assert verdict.status == "failed" and verdict.measured == 1.0


def test_every_final_report_in_ends_the_wait_at_once_and_records_nothing(tmp_path):
    workers = clients(a=STATE_RUNNING, b=STATE_RUNNING)
    reports = FinalReports(STATE_MISSING)
    reports.expect(workers)
    clock = FakeClock()

    def ask(worker):  # each worker stops its users and answers straight away
        reports.receive(worker, {"intervals": [], "final": True})

    assert reports.wait(workers, ask, timeout=30.0, sleep=clock.sleep, clock=clock) == []
    assert clock.slept == 0.0

    run = RunRecorder(environment(), tmp_path).start(ticking=False)
    assert reports.record_missing(run.events, lost=set()) == []
    run.stop()
    (verdict,) = [v for v in evaluate(tmp_path, ["no_worker_lost"]) if v.expression == "no_worker_lost"]
    assert verdict.status == "passed" and verdict.measured == 0.0


def test_periodic_reports_are_not_final_ones():
    workers = clients(a=STATE_RUNNING)
    reports = FinalReports(STATE_MISSING)
    reports.expect(workers)
    reports.receive("a", {"intervals": [{"start": 1, "end": 2, "series": []}]})
    reports.receive("a", None)  # Locust's own stats, no loadkit payload
    assert reports.outstanding() == ["a"]
    reports.receive("a", {"final": True})
    assert reports.outstanding() == []


def test_a_worker_locust_marks_missing_is_not_waited_for_and_is_left_to_worker_lost(tmp_path):
    workers = clients(dead=STATE_RUNNING, alive=STATE_RUNNING, gone_before=STATE_MISSING)
    reports = FinalReports(STATE_MISSING)
    reports.expect(workers)
    assert reports.awaited == {"dead", "alive"}  # already missing when the test began to stop: owes nothing

    def on_sleep(now):
        if now >= 1003.0:
            workers["dead"].state = STATE_MISSING  # about three silent heartbeats
        if now >= 1001.0:
            reports.receive("alive", {"final": True})

    clock = FakeClock(on_sleep)
    assert reports.wait(workers, lambda worker: None, timeout=30.0, sleep=clock.sleep, clock=clock) == []
    assert 3.0 <= clock.slept < 3.1

    run = RunRecorder(environment(), tmp_path).start(ticking=False)
    assert reports.record_missing(run.events, lost={"dead"}) == []  # the run records it worker_lost, once
    run.stop()
    assert not [e for e in events_of(tmp_path) if e["kind"] == FINAL_REPORT_MISSING]


def test_a_worker_that_left_during_the_wait_is_not_waited_for_but_its_report_is_missing(tmp_path):
    workers = clients(left=STATE_RUNNING)
    reports = FinalReports(STATE_MISSING)
    reports.expect(workers)
    del workers["left"]  # quit without a final report
    clock = FakeClock()
    assert reports.wait(workers, lambda worker: None, timeout=30.0, sleep=clock.sleep, clock=clock) == []
    assert clock.slept == 0.0

    run = RunRecorder(environment(), tmp_path).start(ticking=False)
    assert reports.record_missing(run.events, lost=set()) == ["left"]
    run.stop()
    (verdict,) = [v for v in evaluate(tmp_path, ["no_worker_lost"]) if v.expression == "no_worker_lost"]
    assert verdict.status == "failed"
