"""On a Locust worker: record requests, fold them each second, send them with each report.

Locust workers report to the master every 3 seconds (`report_to_master`);
loadkit's intervals ride in the same message as Locust's own stats, so the
master's totals and Locust's can only agree. Every report carries all the
intervals folded since the previous one, plus the part of the current
interval seen so far; the master adds parts of the same interval together.

Locust sends a worker's last stats only when the master asks it to quit;
when the master merely stops the test, the requests that finished during
the stop would wait for the next periodic report. A report sent at
`test_stop` closes that gap, for Locust's counts as well as for loadkit's.
"""

from __future__ import annotations

import logging
import math
import time

import gevent

from loadkit.metrics._integrity import GENERATOR_CPU_HIGH
from loadkit.metrics._intervals import tick_every_second
from loadkit.metrics._recorder import RequestRecorder

log = logging.getLogger(__name__)

PAYLOAD_KEY = "loadkit"


class WorkerReporter:
    def __init__(self, environment):
        self.environment = environment
        self.recorder = RequestRecorder()
        self.pending: list[tuple[float, float, list]] = []  # (start, end, [Series]) not yet sent
        self.events: list[dict] = []
        self.sent_examples: set[tuple[str, str, str]] = set()
        self.current_start = math.floor(time.time())
        self._ticker = None

    def install(self) -> "WorkerReporter":
        events = self.environment.events
        events.request.add_listener(self.recorder.on_request)
        events.report_to_master.add_listener(self.on_report_to_master)
        events.test_stop.add_listener(self.on_test_stop)
        events.cpu_warning.add_listener(self.on_cpu_warning)
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
                {"start": start, "end": end, "series": [one.to_json() for one in series]}
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

    def on_test_stop(self, environment, **_kwargs) -> None:
        runner = environment.runner
        data: dict = {}
        environment.events.report_to_master.fire(client_id=runner.client_id, data=data)
        try:
            runner.send_message("stats", data)
        except Exception as error:  # the periodic report will try again
            log.warning("loadkit: could not send the final report to the master: %s", error)

    def on_cpu_warning(self, environment, cpu_usage, **_kwargs) -> None:
        self.events.append({"time": time.time(), "kind": GENERATOR_CPU_HIGH,
                            "detail": f"worker process CPU at {cpu_usage:.0f}% (Locust warns above 90%): its timings may be late"})
