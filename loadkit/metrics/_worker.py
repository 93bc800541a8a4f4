"""Between workers and their master: intervals sent with each report, and the final report.

Locust workers report to the master every 3 seconds (`report_to_master`);
loadkit's intervals ride in the same message as Locust's own stats, so the
master's totals and Locust's can only agree. Every report carries all the
intervals folded since the previous one, plus the part of the current
interval seen so far; the master adds parts of the same interval together.

Locust sends a worker's last stats only when the master asks it to quit;
when the master merely stops the test, the requests that finished during
the stop would wait for the next periodic report. A report sent at
`test_stop` closes that gap, for Locust's counts as well as for loadkit's,
and says it is the worker's final one (``"final": true``).

A headless master quits its workers and gives their last stats half a
second, whatever their users were doing: on a busy machine a worker's last
report came later, and its last seconds were missing from Locust's counts
and from loadkit's alike. So when a test stops, the master asks every worker
that owes a final report to stop its users and send it
(`FINAL_REPORT_MESSAGE`), and waits for all of them (`FinalReports`); one
that never comes is an integrity event, ``final_report_missing``.

A worker's histograms travel in zlib's stored blocks (`WIRE_LEVEL`, see
`loadkit.hdr`): twice the bytes of hdrh's level, but the master, which
inflates every histogram of every worker, copies them out instead of
decompressing them (0.4 µs a histogram instead of 5).
"""

from __future__ import annotations

import logging
import math
import time

import gevent

from loadkit.hdr import WIRE_LEVEL
from loadkit.metrics._intervals import tick_every_second
from loadkit.metrics._open_model import OpenModelRecorder
from loadkit.results._events import FINAL_REPORT_MISSING, GENERATOR_CPU_HIGH

log = logging.getLogger(__name__)

PAYLOAD_KEY = "loadkit"
FINAL_REPORT_MESSAGE = "loadkit_final_report"  # master -> worker: stop your users, send your final report
WAIT_STEP = 0.05  # seconds between looks while the master waits for final reports


def wire_series(series: list) -> list[dict]:
    """`Series` as a worker sends them to its master."""
    return [one.to_json(WIRE_LEVEL) for one in series]


class WorkerReporter:
    def __init__(self, environment):
        self.environment = environment
        self.recorder = OpenModelRecorder()
        self.pending: list[tuple[float, float, list]] = []  # (start, end, [Series]) not yet sent
        self.events: list[dict] = []
        self.sent_examples: set[tuple[str, str, str]] = set()
        self.current_start = math.floor(time.time())
        self.final_sent = False  # the final report of the current test is sent
        self._ticker = None

    def install(self, runner) -> "WorkerReporter":
        events = self.environment.events
        events.request.add_listener(self.recorder.on_request)
        events.report_to_master.add_listener(self.on_report_to_master)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.cpu_warning.add_listener(self.on_cpu_warning)
        runner.register_message(FINAL_REPORT_MESSAGE, self.on_final_report_asked)
        self._ticker = gevent.spawn(tick_every_second, self.tick)
        return self

    def tick(self, boundary: float) -> None:
        if boundary <= self.current_start:
            return
        start, self.current_start = self.current_start, boundary
        self._fold(start, boundary)

    def _fold(self, start: float, end: float) -> None:
        if self.recorder.pending():
            self.pending.append((start, end, self.recorder.fold(self.recorder.take())))

    def payload(self) -> dict | None:
        """Everything not sent yet, as JSON-ready data (None when there is nothing)."""
        # The current interval so far; the rest of it goes with a later report, under the same start.
        self._fold(self.current_start, max(time.time(), self.current_start + 0.001))
        examples = []
        for key, example in self.recorder.examples.items():
            if key not in self.sent_examples:
                self.sent_examples.add(key)
                examples.append([*key, example.phase, example.code, example.example])
        if not (self.pending or examples or self.events):
            return None
        payload = {
            "intervals": [
                {"start": start, "end": end, "series": wire_series(series)}
                for start, end, series in self.pending
            ],
            "examples": examples,
            "events": self.events,
        }
        self.pending, self.events = [], []
        return payload

    def on_report_to_master(self, client_id, data, **_kwargs) -> None:
        payload = self.payload()
        if payload is not None:
            data[PAYLOAD_KEY] = payload

    def on_test_start(self, environment, **_kwargs) -> None:
        self.final_sent = False

    def on_test_stop(self, environment, **_kwargs) -> None:
        self.send_final_report(environment.runner)

    def send_final_report(self, runner) -> None:
        """Everything not sent yet, Locust's stats included, marked final."""
        data: dict = {}
        self.environment.events.report_to_master.fire(client_id=runner.client_id, data=data)
        data.setdefault(PAYLOAD_KEY, {})["final"] = True
        try:
            runner.send_message("stats", data)
        except Exception as error:  # noqa: BLE001 - the master records it missing; the periodic report sends the numbers
            log.warning("loadkit: could not send the final report to the master: %s", error)
            return
        self.final_sent = True

    def on_final_report_asked(self, environment, msg=None, **_kwargs) -> None:
        """The master's test stopped: stop the users (their test_stop sends the final report)."""
        from locust.runners import STATE_RUNNING, STATE_SPAWNING

        runner = environment.runner
        if runner.state in (STATE_RUNNING, STATE_SPAWNING):
            runner.stop()
        if not self.final_sent:  # stopped before, and that report did not go: send one now
            self.send_final_report(runner)

    def on_cpu_warning(self, environment, cpu_usage, **_kwargs) -> None:
        self.events.append({"time": time.time(), "kind": GENERATOR_CPU_HIGH,
                            "detail": f"worker process CPU at {cpu_usage:.0f}% (Locust warns above 90%): its timings may be late"})


class FinalReports:
    """A master's side: which workers still owe the final report of the test that is stopping.

    `clients` are a MasterRunner's (id -> node with .id and .state). A worker
    that Locust marks missing, or that has left, is not waited for: it is
    lost (see `_integrity`), not late.
    """

    def __init__(self, missing_state: str = "missing"):
        self.missing_state = missing_state  # locust.runners.STATE_MISSING
        self.awaited: set[str] = set()
        self.received: set[str] = set()
        self.waited: float | None = None  # seconds the last wait allowed

    def expect(self, clients) -> None:
        """The test begins to stop: every worker not missing now owes a final report."""
        self.awaited = {client.id for client in clients.values() if client.state != self.missing_state}
        self.received = set()

    def receive(self, worker: str, payload: dict | None) -> None:
        if payload and payload.get("final") and worker in self.awaited:
            self.received.add(worker)

    def outstanding(self, clients=None) -> list[str]:
        """Awaited and not received; with `clients`, only the workers still there and not missing."""
        left = self.awaited - self.received
        if clients is not None:
            left = {worker for worker in left
                    if worker in clients and clients[worker].state != self.missing_state}
        return sorted(left)

    def wait(self, clients, ask, timeout: float, sleep, clock=time.monotonic) -> list[str]:
        """`ask(worker)` for each outstanding report, then wait for them, at most `timeout` seconds.

        Returns the workers still outstanding at the end."""
        self.waited = timeout
        for worker in self.outstanding(clients):
            ask(worker)
        deadline = clock() + timeout
        while (left := self.outstanding(clients)) and clock() < deadline:
            sleep(WAIT_STEP)
        return left

    def record_missing(self, log, lost: set[str]) -> list[str]:
        """An integrity event for each worker whose final report never came, but for the `lost`
        (recorded as such). Returns those workers."""
        missing = [worker for worker in self.outstanding() if worker not in lost]
        within = f" within {self.waited:.0f} s" if self.waited is not None else ""
        for worker in missing:
            log.record(FINAL_REPORT_MISSING, worker, f"no final report{within} after the test stopped: "
                                                     "its last numbers are not counted")
        return missing
