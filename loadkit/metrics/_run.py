"""One run into one results folder: metrics.jsonl (and its minutes), events.jsonl and errors.csv.

`RunRecorder` works where the numbers end up: on a local runner (with a
`RequestRecorder` on the request event) or on a master (fed by workers'
reports, see `_worker`). A tick on whole seconds of the clock closes each
interval, so the intervals of every process of a distributed run line up.

A write that fails (a full disk) stops the recording there: nothing more is
written, what was written stays readable (run_stopped and run.json are then
missing, so readers call the run incomplete), `write_failure` holds the one-line
error and `on_write_failure(error)` is called once, so the caller can stop the
load rather than go on measuring what it cannot keep. Without that callback
the error is logged once, in one line, and the load goes on unrecorded.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import gevent

from loadkit.metrics._integrity import IntegrityLog, WorkerWatch
from loadkit.metrics._intervals import IntervalStore, tick_every_second
from loadkit.metrics._recorder import PHASE_SUFFIX, ErrorExample, RequestRecorder
from loadkit.results import ResultsError, close_quietly, open_events, open_metrics, open_minutes, write_errors
from loadkit.results._events import COUNT_MISMATCH, GENERATOR_CPU_HIGH, LATE_DATA, RUN_STARTED, RUN_STOPPED

# A master hears from each worker every WORKER_REPORT_INTERVAL (3 s): an interval
# stays open this long so every worker's share of it is in before it is written.
MASTER_SETTLE = 5.0

log = logging.getLogger(__name__)


class RunRecorder:
    """Intervals, integrity events and errors of one run, written into `folder` as it goes."""

    def __init__(self, environment, folder: Path, recorder: RequestRecorder | None = None, settle: float = 0.0,
                 on_write_failure=None):
        self.environment = environment
        self.folder = Path(folder)
        self.recorder = recorder
        self.on_write_failure = on_write_failure
        self.write_failure: ResultsError | None = None  # the first write that failed; nothing written since
        self._metrics_out = open_metrics(self.folder)
        opened = [self._metrics_out]
        try:
            self._minutes_out = open_minutes(self.folder)
            opened.append(self._minutes_out)
            self._events_out = open_events(self.folder)
        except ResultsError:
            for out in opened:
                close_quietly(out)
            raise
        self.store = IntervalStore(self._metrics_out, settle=settle, minutes_out=self._minutes_out)
        self.events = IntegrityLog(self._events_out)
        self.watch = WorkerWatch(self.events)
        self.examples: dict[tuple[str, str, str], ErrorExample] = {}
        self.worker_shares: dict[str, int] = {}
        self.started_at = self.stopped_at = None
        self.test_stopped_at = None  # when the test stopped, if the folder is written later
        self.current_start = math.floor(time.time())
        self._ticker = None

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.stopped_at is None

    def start(self, joined: list[tuple[float, str]] = (), ticking: bool = True) -> "RunRecorder":
        """Start recording; `joined` are (time, worker) that connected before the run.

        Without `ticking` the caller closes intervals itself with `tick()`.
        """
        for at, worker in joined:
            self.watch.joined(worker, at)
        self.started_at = time.time()
        self.current_start = math.floor(self.started_at)
        if self.recorder is not None:
            self.recorder.take()  # nothing from before the run
            self.environment.events.request.add_listener(self.recorder.on_request)
        cpu_warning = getattr(self.environment.events, "cpu_warning", None)
        if cpu_warning is not None:
            cpu_warning.add_listener(self.on_cpu_warning)
        try:
            self.events.record(RUN_STARTED, None, f"results in {self.folder}", at=self.started_at)
        except ResultsError as error:
            self._write_failed(error)
        if ticking:
            self._ticker = gevent.spawn(tick_every_second, self.tick)
        return self

    def tick(self, boundary: float) -> None:
        """Close the interval that ends at `boundary` and write what has settled."""
        if boundary <= self.current_start or self.write_failure is not None:
            return
        self._close_interval(boundary)
        try:
            self.store.flush(time.time())
            self.watch_workers()
        except ResultsError as error:
            self._write_failed(error)

    def _write_failed(self, error: ResultsError) -> None:
        """The first failed write: stop writing, keep what was written, tell the caller once."""
        if self.write_failure is not None:
            return
        self.write_failure = error
        self.events.stop_writing()
        close_quietly(self._metrics_out)
        close_quietly(self._minutes_out)
        close_quietly(self._events_out)
        if self.on_write_failure is not None:
            self.on_write_failure(error)
        else:
            log.error("loadkit: %s; recording stopped there (the load goes on)", error)

    def watch_workers(self) -> None:
        runner = self.environment.runner
        if runner is not None and hasattr(runner, "clients"):
            from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING

            self.watch.missing = STATE_MISSING
            self.watch.check(runner.clients, running=runner.state in (STATE_RUNNING, STATE_SPAWNING))

    def _close_interval(self, end: float) -> None:
        start, self.current_start = self.current_start, end
        if self.recorder is not None:
            self.store.add(start, end, self.recorder.fold(self.recorder.take()))
        runner = self.environment.runner
        if runner is not None:
            self.store.set_users(start, end, runner.user_count)

    def on_cpu_warning(self, environment=None, cpu_usage=0.0, **_kwargs) -> None:
        """Locust's own warning (its process above 90% CPU), on this process: the master's or a local runner's."""
        if self.running:
            runner = self.environment.runner
            where = "master" if runner is not None and hasattr(runner, "clients") else "load generator"
            self.events.record(GENERATOR_CPU_HIGH, None, f"{where} process CPU at {cpu_usage:.0f}% "
                                                         "(Locust warns above 90%): its timings may be late")

    def add_worker_report(self, worker: str, payload: dict) -> None:
        """Merge what a worker sent with a report (see `_worker.WorkerReporter.payload`)."""
        if not self.running or self.write_failure is not None:
            return
        try:
            self._add_worker_report(worker, payload)
        except ResultsError as error:
            self._write_failed(error)

    def _add_worker_report(self, worker: str, payload: dict) -> None:
        late_before = self.store.late
        requests = 0
        for interval in payload.get("intervals", ()):
            requests += self.store.add_json(float(interval["start"]), float(interval["end"]), interval["series"])
        self.worker_shares[worker] = self.worker_shares.get(worker, 0) + requests
        for request_type, name, key, phase, code, example in payload.get("examples", ()):
            self.examples.setdefault((request_type, name, key), ErrorExample(phase, code, example))
        for event in payload.get("events", ()):
            self.events.record(event["kind"], worker, event.get("detail", ""), at=event.get("time"))
        if self.store.late > late_before:
            self.events.record(LATE_DATA, worker, "a report arrived after its interval was written; "
                                                  "counted in the oldest open interval")

    def test_stopped(self) -> None:
        """The test stopped now; `stop()` comes once late reports are in (a master)."""
        if self.test_stopped_at is None:
            self.test_stopped_at = time.time()

    def stop(self, locust_total=None) -> dict:
        """Close the last interval, write everything; returns the run's totals."""
        if self.stopped_at is not None:
            return self.summary()
        self.stopped_at = self.test_stopped_at or time.time()
        if self._ticker is not None:
            self._ticker.kill()
        if self.recorder is not None:
            self.environment.events.request.remove_listener(self.recorder.on_request)
        cpu_warning = getattr(self.environment.events, "cpu_warning", None)
        if cpu_warning is not None:
            cpu_warning.remove_listener(self.on_cpu_warning)
        if self.write_failure is not None:
            return self.summary()
        try:
            self._write_the_rest(locust_total)
        except ResultsError as error:
            self._write_failed(error)
        return self.summary()

    def _write_the_rest(self, locust_total) -> None:
        self._close_interval(max(time.time(), self.current_start + 0.001))
        self.watch_workers()
        self.watch.close()
        self.store.flush()
        if self.recorder is not None:
            self.examples.update(self.recorder.examples)
        self._write_errors()
        ok, failed = self.store.totals.requests()
        if locust_total is not None:
            requests, failures = self._locust_requests(locust_total)
            if (ok + failed, failed) != (requests, failures):
                self.events.record(COUNT_MISMATCH, None, f"loadkit counted {ok + failed} requests ({failed} failed), "
                                   f"Locust {requests} ({failures} failed)")
        self.events.record(RUN_STOPPED, None, f"{ok + failed} requests, {failed} failed", at=self.stopped_at)
        self._metrics_out.close()
        self._minutes_out.close()
        self._events_out.close()

    def _locust_requests(self, locust_total) -> tuple[int, int]:
        """Locust's requests and failures less its phase rows (phase_stats): those are phase times, not requests."""
        requests, failures = locust_total.num_requests, locust_total.num_failures
        stats = getattr(self.environment, "stats", None)
        for (_name, method), entry in (getattr(stats, "entries", None) or {}).items():
            if method and method.endswith(PHASE_SUFFIX):
                requests -= entry.num_requests
                failures -= entry.num_failures
        return requests, failures

    def summary(self) -> dict:
        ok, failed = self.store.totals.requests()
        facts = {"started_at": self.started_at, "stopped_at": self.stopped_at,
                 "recorded_requests": ok + failed, "recorded_failures": failed}
        if self.worker_shares:
            facts["workers"] = len(self.worker_shares)
            facts["worker_shares"] = dict(self.worker_shares)
        return facts

    def _write_errors(self) -> None:
        rows = []
        for (request_type, name, key), count in sorted(self.store.totals.errors.items(), key=lambda item: (-item[1], item[0])):
            example = self.examples.get((request_type, name, key)) or ErrorExample("", "", "")
            rows.append((request_type, name, key, example.phase, example.code, count, example.example))
        write_errors(self.folder, rows)
