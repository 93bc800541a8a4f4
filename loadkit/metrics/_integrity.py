"""events.jsonl: what could make a run's numbers wrong, as it happened.

Workers joining, going missing (no heartbeat for a few seconds), coming
back, being lost (removed after a long silence, or silent when the test
stopped) or quitting; a load generator short of CPU, so that it, not the
target, may be the bottleneck and its timings late: Locust's own CPU warning
(``generator_cpu_high``, a process above 90%) or the host probe seeing the
machine saturated (``host_cpu_saturated``); the run starting and stopping.

Locust has an event for a worker connecting but none for the others: the
master's view of its workers (`runner.clients`) is compared from one tick to
the next instead.

Locust notices a silent worker only after about four missed heartbeats, so a
worker that dies in the last seconds of a run would end it unnoticed. When
the test stops, every worker still alive is expected to speak once more (a
heartbeat, its final report): one that stays silent is lost.
"""

from __future__ import annotations

import time

from loadkit.results import ResultsError, write_event
from loadkit.results._events import (  # the kinds are events.jsonl's format; recorded here
    WORKER_JOINED,
    WORKER_LOST,
    WORKER_MISSING,
    WORKER_QUIT,
    WORKER_RECOVERED,
)


class IntegrityLog:
    """Appends one JSON line per event to `out` (a text file), flushed at once.

    After a failed write (ResultsError, raised once) or `stop_writing()` it
    writes nothing more: events still come from listeners, the file is gone.
    """

    def __init__(self, out):
        self.out = out
        self.counts: dict[str, int] = {}
        self.writing = True

    def record(self, kind: str, worker: str | None = None, detail: str = "", at: float | None = None) -> None:
        if self.writing:
            try:
                write_event(self.out, kind, worker, detail, at)
            except ResultsError:
                self.writing = False
                raise
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def stop_writing(self) -> None:
        self.writing = False


class WorkerWatch:
    """Turns changes in a MasterRunner's `clients` (id -> node with .id, .state) into events."""

    def __init__(self, log: IntegrityLog, missing_state: str = "missing"):
        self.log = log
        self.missing = missing_state  # locust.runners.STATE_MISSING
        self.states: dict[str, str] = {}
        self.last_heard: dict[str, float] = {}
        self.stopping_at: float | None = None
        self.awaited: set[str] = set()  # workers alive when the test began to stop
        self.lost: set[str] = set()

    def joined(self, worker: str, at: float | None = None) -> None:
        self.log.record(WORKER_JOINED, worker, "connected to the master", at=at)

    def check(self, clients, running: bool = True) -> None:
        """Compare with the last check; a worker leaving counts only while the test runs."""
        missing = self.missing
        now = {client.id: client.state for client in clients.values()}
        for worker, state in now.items():
            before = self.states.get(worker)
            if state == missing and before != missing:
                self.log.record(WORKER_MISSING, worker, "no heartbeat for 3 seconds")
            elif before == missing and state != missing:
                self.log.record(WORKER_RECOVERED, worker, f"heartbeat again, state {state}")
        for worker, before in self.states.items():
            if worker in now:
                continue
            if before == missing:
                self.lost.add(worker)
                self.log.record(WORKER_LOST, worker, "removed after a minute without heartbeat; its users were redistributed")
            elif running:
                self.log.record(WORKER_QUIT, worker, f"left the master during the test (was {before})")
        self.states = now

    def heard(self, worker: str, at: float | None = None) -> None:
        """The master got a heartbeat or a report from `worker`."""
        self.last_heard[worker] = time.time() if at is None else at

    def stopping(self, clients, at: float | None = None) -> None:
        """The test begins to stop: each worker not missing now must be heard from after `at`."""
        self.stopping_at = time.time() if at is None else at
        self.awaited = {client.id for client in clients.values() if client.state != self.missing}

    def silent(self) -> list[str]:
        """Workers awaited since the test began to stop, not heard from since, not known missing or lost."""
        if self.stopping_at is None:
            return []
        return sorted(
            worker for worker in self.awaited
            if self.last_heard.get(worker, 0.0) < self.stopping_at
            and self.states.get(worker) != self.missing and worker not in self.lost
        )

    def close(self) -> None:
        """At the end of the run: a worker still missing, or silent since the test began to stop,
        never delivered the rest of its numbers."""
        for worker, state in self.states.items():
            if state == self.missing:
                self.lost.add(worker)
                self.log.record(WORKER_LOST, worker, "still missing when the run stopped")
        for worker in self.silent():
            self.lost.add(worker)
            last = self.last_heard.get(worker)
            since = f"; last heard {self.stopping_at - last:.1f} s before the test stopped" if last else ""
            self.log.record(WORKER_LOST, worker, f"no final report: died in the last seconds{since}")
