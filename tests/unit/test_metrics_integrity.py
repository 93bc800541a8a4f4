"""events.jsonl from a master's view of its workers, changed the way Locust's MasterRunner changes it.

Locust is not imported (it would monkey-patch the whole test process): its
worker nodes are an id and a state string, in a dict by id.
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

from loadkit.metrics._integrity import IntegrityLog, WorkerWatch

STATE_RUNNING, STATE_MISSING, STATE_STOPPED = "running", "missing", "stopped"  # locust.runners' values


def worker_node(worker, state):
    return SimpleNamespace(id=worker, state=state)


def kinds(out: io.StringIO) -> list[tuple[str, str | None]]:
    return [(e["kind"], e["worker"]) for e in map(json.loads, out.getvalue().splitlines())]


def test_missing_recovered_lost_and_quit_workers():
    out = io.StringIO()
    watch = WorkerWatch(IntegrityLog(out), missing_state=STATE_MISSING)
    clients = {}
    for worker in ("a", "b", "c"):
        clients[worker] = worker_node(worker, state=STATE_RUNNING)
    watch.joined("a")
    watch.check(clients)
    assert kinds(out) == [("worker_joined", "a")]

    clients["a"].state = STATE_MISSING  # no heartbeat: Locust's heartbeat_worker marks it
    clients["b"].state = STATE_MISSING
    watch.check(clients)
    watch.check(clients)  # still missing: no second event
    clients["b"].state = STATE_RUNNING  # heartbeat again
    del clients["a"]  # a minute without heartbeat: Locust removes it
    del clients["c"]  # left while the test runs
    watch.check(clients)
    assert kinds(out)[1:] == [
        ("worker_missing", "a"), ("worker_missing", "b"), ("worker_recovered", "b"),
        ("worker_lost", "a"), ("worker_quit", "c"),
    ]


def test_leaving_after_the_test_is_not_an_event_but_still_missing_at_the_end_is_lost():
    out = io.StringIO()
    watch = WorkerWatch(IntegrityLog(out), missing_state=STATE_MISSING)
    clients = {}
    clients["a"] = worker_node("a", state=STATE_RUNNING)
    clients["b"] = worker_node("b", state=STATE_RUNNING)
    watch.check(clients)
    clients["b"].state = STATE_MISSING
    watch.check(clients)
    clients["a"].state = STATE_STOPPED
    del clients["a"]
    watch.check(clients, running=False)
    watch.close()
    assert kinds(out) == [("worker_missing", "b"), ("worker_lost", "b")]
    assert "still missing" in json.loads(out.getvalue().splitlines()[-1])["detail"]
