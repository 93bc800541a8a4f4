"""A worker silent since its test began to stop is lost; one heard from is not; one already
missing is lost once. Locust is not imported (see test_metrics_integrity)."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

from loadkit.metrics._integrity import IntegrityLog, WorkerWatch

STATE_RUNNING, STATE_MISSING = "running", "missing"


def events(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_only_workers_silent_since_the_stop_are_lost_once():
    out = io.StringIO()
    watch = WorkerWatch(IntegrityLog(out), missing_state=STATE_MISSING)
    clients = {w: SimpleNamespace(id=w, state=STATE_RUNNING) for w in ("alive", "dead", "reported", "gone")}
    clients["gone"].state = STATE_MISSING
    watch.check(clients)
    for worker in ("alive", "dead", "reported"):
        watch.heard(worker, at=99.0)
    watch.stopping(clients, at=100.0)
    assert watch.silent() == ["alive", "dead", "reported"]
    watch.heard("alive", at=100.5)  # a heartbeat
    watch.heard("reported", at=101.0)  # its final report
    assert watch.silent() == ["dead"]
    watch.close()
    lost = [(e["worker"], e["detail"]) for e in events(out) if e["kind"] == "worker_lost"]
    assert lost == [("gone", "still missing when the run stopped"),
                    ("dead", "no final report: died in the last seconds; last heard 1.0 s before the test stopped")]


def test_a_silent_worker_that_locust_marked_missing_meanwhile_is_lost_once():
    out = io.StringIO()
    watch = WorkerWatch(IntegrityLog(out), missing_state=STATE_MISSING)
    clients = {"dead": SimpleNamespace(id="dead", state=STATE_RUNNING)}
    watch.check(clients)
    watch.stopping(clients, at=100.0)
    clients["dead"].state = STATE_MISSING
    watch.check(clients)
    assert watch.silent() == []
    watch.close()
    assert [e["kind"] for e in events(out)] == ["worker_missing", "worker_lost"]


def test_no_stop_seen_no_silent_workers():
    watch = WorkerWatch(IntegrityLog(io.StringIO()), missing_state=STATE_MISSING)
    watch.check({"a": SimpleNamespace(id="a", state=STATE_RUNNING)})
    assert watch.silent() == []
