"""loadkit's results folder and thresholds on the ``locust`` command line.

Registered by `loadkit.plugin` (which `loadkit.users` imports), so every
locustfile gets two more Locust options (also from locust.conf or
``[tool.locust]``):

    --results DIR    parent of the run's results folder (default reports/):
                     DIR/<YYYYmmdd-HHMMSS>-<locustfile>/ gets run.json,
                     metrics.jsonl, events.jsonl, errors.csv, Locust's CSV
    --check EXPR     a threshold (repeatable), evaluated at the end by
                     `loadkit.check.register_checks`: a verdict table,
                     verdicts.json and junit.xml; exit code 3 when one fails

On a local runner the request listener feeds the results directly; on a
distributed run each worker sends its intervals to the master with its
reports (see `_worker`) and the master writes the folder. When a test stops,
the master waits for every worker's final report, at most the stop timeout
plus FINAL_REPORT_MARGIN seconds; a worker whose report does not come is
recorded ``final_report_missing`` (``no_worker_lost`` fails). `loadkit source`
and `loadkit demo` run Locust in-process and never fire Locust's init
event: this module does nothing for them (the demo records explicitly).

`register_results(events)` returns the `Results` of those events: the
collaborator through which probes and end-to-end delivery find the current
results folder and add integrity events, and the checks learn when it is written.
`merged_state(environment)` is what the running test has merged so far (per
key run-wide histograms and counts, the last second written, per-worker
shares), for a live view.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import weakref
from pathlib import Path

import gevent
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from loadkit import thresholds
from loadkit.loop_clock import call_later
from loadkit.results import CSV_PREFIX, RUN_FILE, ResultsError, new_results_folder, write_run_json
from loadkit.results._events import CPU_HIGH, GENERATOR_CPU_HIGH

log = logging.getLogger(__name__)

DEFAULT_PARENT = "reports"
# After a master stops a test (web UI), the folder is written after this wait (probes
# and end-to-end delivery still add to the run), or at quit (a headless run quits
# about a second after its test stops).
MASTER_STOP_WAIT = 4.0
# A worker stops its users within the stop timeout, then sends its final report:
# a master waits that long plus this margin for it (a busy machine is slow to answer).
FINAL_REPORT_MARGIN = 10.0


def add_options(parser) -> None:
    parser.add_argument(
        "--results", default=DEFAULT_PARENT, metavar="DIR", include_in_web_ui=False,
        help="loadkit: parent folder of the run's results folder (default reports/)",
    )
    parser.add_argument(
        "--check", action="append", default=None, metavar="EXPR", include_in_web_ui=True,
        help="loadkit: threshold checked at the end, repeatable: p95<250ms, send:fail_ratio<0.01, "
             "phase.rcpt:p99<20ms, rps>500, no_worker_lost; exit code 3 when one fails",
    )


class Results:
    """The results folder of each test of one Locust `events`, for the listeners that add to it."""

    def __init__(self):
        self.controller: ResultsController | None = None

    def _of(self, environment) -> ResultsController | None:
        controller = self.controller
        return controller if controller is not None and controller.environment is environment else None

    def folder(self, environment) -> Path | None:
        """The results folder of `environment`'s current or last run (None before one, or on a worker)."""
        controller = self._of(environment)
        return controller.folder if controller is not None else None

    def when_finished(self, environment, callback) -> None:
        """Call `callback(folder)` once `environment`'s last test has its folder written (now if it has;
        never if it could not be written)."""
        controller = self._of(environment)
        if controller is not None:
            controller.when_finished(callback)

    def add_finisher(self, environment, greenlet) -> None:
        """`greenlet` still adds to `environment`'s test folder after its test_stop (a master drains the
        end-to-end queue beside its stop): `wait_for_finishers` waits for it."""
        controller = self._of(environment)
        if controller is not None:
            controller.finishers.append(greenlet)

    def finishers(self, environment) -> list:
        """The finishers of `environment`'s last test added so far (greenlets, done or not)."""
        controller = self._of(environment)
        return list(controller.finishers) if controller is not None else []

    def settled(self, environment) -> bool:
        """Whether `environment`'s last test is all in its folder: the folder written, every test_stop
        listener of loadkit run (a local runner's drain runs in one), every finisher done. True when
        no test has a folder."""
        controller = self._of(environment)
        if controller is None or controller.folder is None:
            return True
        return (controller.written == controller.folder and controller.stop_listeners_done
                and all(finisher.ready() for finisher in controller.finishers))

    def on_last_test_stop(self, environment, **_kwargs) -> None:
        """The last of loadkit's test_stop listeners (`register_last`) has been reached."""
        controller = self._of(environment)
        if controller is not None:
            controller.stop_listeners_done = True

    def wait_for_finishers(self, environment) -> None:
        """Wait until every finisher of `environment`'s last test is done."""
        controller = self._of(environment)
        if controller is not None:
            gevent.joinall([g for g in controller.finishers if g is not gevent.getcurrent()])

    def checks(self, environment) -> list:
        """The thresholds of `environment`'s test: ``--check``'s, or the web UI start form's if it set them."""
        controller = self._of(environment)
        return list(controller.checks) if controller is not None else []

    def record_event(self, environment, kind: str, detail: str) -> bool:
        """Add an event to events.jsonl of `environment`'s running test; False when none runs."""
        controller = self._of(environment)
        run = controller.run if controller is not None else None
        if run is None or not run.running:
            return False
        run.events.record(kind, None, detail)
        return True

    def on_init(self, environment, runner=None, **_kwargs) -> None:
        options = environment.parsed_options
        if options is None or not hasattr(options, "results"):
            return  # Locust run in-process, or options that are not ours
        if isinstance(runner, WorkerRunner):
            from loadkit.metrics._worker import WorkerReporter

            WorkerReporter(environment).install(runner)
            return
        try:
            checks = thresholds.parse_all(options.check)
        except thresholds.ThresholdError as error:
            _fail_at_start(f"--check: {error}")
        parent = Path(options.results)
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            _fail_at_start(f"--results {parent}: cannot create it: {error.strerror or error}")
        if not os.access(parent, os.W_OK):
            _fail_at_start(f"--results {parent}: not writable")
        self.controller = ResultsController(environment, runner, parent, checks)
        self.controller.install()

    def on_test_stop(self, environment, **_kwargs) -> None:
        """Registered first: the run's stop time is when its users stopped, and a master has
        its workers' final reports before the other listeners' end-of-test work."""
        controller = self._of(environment)
        if controller is not None:
            controller.on_test_stop()

    def on_quitting(self, environment, **_kwargs) -> None:
        """Registered before Locust creates its runner: Locust fires `quitting` in reverse
        order, so a master has already sent quit to its workers when this runs."""
        controller = self._of(environment)
        if controller is not None:
            controller.quitting()


_registered: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # events -> Results


def register_results(events) -> Results:
    """Add the results folder's listeners to Locust's `events` (once); its `Results`."""
    results = _registered.get(events)
    if results is None:
        results = _registered[events] = Results()
        events.init.add_listener(results.on_init)
        events.test_stop.add_listener(results.on_test_stop)
        events.quitting.add_listener(results.on_quitting)
    return results


def register_last(events, results: Results) -> None:
    """Register after every other loadkit listener: at init it adds the last of loadkit's test_stop
    listeners, which tells `results` (`settled`) that the others, a local drain included, have run."""

    def on_init(environment, **_kwargs):
        environment.events.test_stop.add_listener(results.on_last_test_stop)

    events.init.add_listener(on_init)


def results_folder(environment) -> Path | None:
    """The results folder of `environment`'s current or last run (None before one, or on a worker)."""
    results = _registered.get(environment.events)
    return results.folder(environment) if results is not None else None


def merged_state(environment):
    """What `environment`'s running (or last) test has merged so far: a `MergedState` (see
    `loadkit.metrics._intervals`), or None before a test, on a worker, or once the run is written."""
    results = _registered.get(environment.events)
    controller = results._of(environment) if results is not None else None
    return controller.merged_state() if controller is not None else None


def record_event(environment, kind: str, detail: str) -> bool:
    """Add an event to events.jsonl of `environment`'s running test; False when none runs."""
    results = _registered.get(environment.events)
    return results.record_event(environment, kind, detail) if results is not None else False


def _fail_at_start(message: str):
    print(f"loadkit: {message}", file=sys.stderr)
    sys.exit(2)


class ResultsController:
    """One results folder per test run of a local runner or a master."""

    def __init__(self, environment, runner, parent: Path, checks: list):
        self.environment = environment
        self.runner = runner
        self.parent = parent
        self.checks = checks
        self.distributed = isinstance(runner, MasterRunner)
        self.label = Path(environment.locustfile or "locust").stem
        self.run = None
        self.csv = None
        self.folder = None
        self.joined: list[tuple[float, str]] = []  # workers that joined before the run started
        self.final_reports = None  # a master's: the final reports of the test that stops
        self._pending_finish = None
        self.written: Path | None = None  # the folder of the last test, once finished
        self._on_finished: list = []  # callbacks waiting for it
        self.finishers: list = []  # greenlets still adding to the last test's folder (a master's e2e drain)
        self.stop_listeners_done = False  # loadkit's test_stop listeners of the last test all ran

    def install(self) -> None:
        events_ = self.environment.events
        events_.test_start.add_listener(self.on_test_start)
        if self.distributed:
            events_.worker_report.add_listener(self.on_worker_report)
            events_.worker_connect.add_listener(self.on_worker_connect)
            events_.heartbeat_sent.add_listener(self.on_worker_heard)
            events_.test_stopping.add_listener(self.on_test_stopping)

    def on_test_start(self, environment, **_kwargs) -> None:
        from loadkit.metrics._csv import LocustCsv
        from loadkit.metrics._open_model import OpenModelRecorder
        from loadkit.metrics._run import MASTER_SETTLE, RunRecorder

        if self.run is not None:
            self.finish()  # the web UI started a new test: close the previous folder first
        self.written = None
        self.finishers = []
        self.stop_listeners_done = False
        try:
            self.folder = new_results_folder(self.parent, self.label)
        except ResultsError as error:
            print(f"loadkit: {error}", file=sys.stderr)
            environment.process_exit_code = 2
            return
        options = environment.parsed_options
        self.csv = LocustCsv(environment, str(self.folder / CSV_PREFIX),
                             full_history=bool(getattr(options, "stats_history_enabled", False))).start()
        if self.distributed:
            self.run = RunRecorder(environment, self.folder, None, settle=MASTER_SETTLE).start(self.joined)
            self.joined = []
            self.run.watch_workers()
        else:
            self.run = RunRecorder(environment, self.folder, OpenModelRecorder()).start()

    def on_test_stopping(self, environment, **_kwargs) -> None:
        from loadkit.metrics._worker import FinalReports

        if self.run is not None and self.run.running and self.runner is not None:
            self.run.watch.stopping(self.runner.clients)
            self.final_reports = FinalReports(STATE_MISSING)
            self.final_reports.expect(self.runner.clients)

    def on_worker_heard(self, client_id, **_kwargs) -> None:
        if self.run is not None:
            self.run.watch.heard(client_id)

    def on_test_stop(self) -> None:
        if self.run is None:
            return
        self.run.test_stopped()
        if not self.distributed:
            self.finish()
            return
        self._wait_for_final_reports()
        if self._pending_finish is None:
            self._pending_finish = call_later(MASTER_STOP_WAIT, self.finish)

    def quitting(self) -> None:
        if self.run is None:
            return
        if not self.distributed and self.run.running and self.runner is not None:
            self.runner.stop()  # interrupted: stop the users so Locust's totals are final (finishes via test_stop)
        self.finish()

    def _wait_for_final_reports(self) -> None:
        """Ask each worker that owes its final report to stop its users and send it, and wait.

        Locust gives a quitting worker's last stats half a second; a worker still finishing
        its messages then, on a busy machine, had its last seconds dropped from every count.
        A worker killed in the last seconds is waited for until Locust marks it missing."""
        from loadkit.metrics._worker import FINAL_REPORT_MESSAGE

        if self.final_reports is None:
            return
        runner = self.runner

        def ask(worker: str) -> None:
            try:
                runner.send_message(FINAL_REPORT_MESSAGE, None, client_id=worker)
            except Exception as error:  # noqa: BLE001 - a worker that cannot be asked is waited for all the same
                log.warning("loadkit: cannot ask worker %s for its final report: %s", worker, error)

        timeout = (self.environment.stop_timeout or 0.0) + FINAL_REPORT_MARGIN
        left = self.final_reports.wait(runner.clients, ask, timeout, gevent.sleep)
        if left:
            log.warning("loadkit: no final report from %s after %.0f s", ", ".join(left), timeout)

    def on_worker_report(self, client_id, data, **_kwargs) -> None:
        from loadkit.metrics._worker import PAYLOAD_KEY

        payload = data.get(PAYLOAD_KEY)
        if self.run is not None:
            self.run.watch.heard(client_id)
            if payload:
                self.run.add_worker_report(client_id, payload)
        if self.final_reports is not None:
            self.final_reports.receive(client_id, payload)

    def merged_state(self):
        """The current run's merged numbers so far (`MergedState`: per key run-wide histograms
        and counts, the last second written, per-worker shares); None when no run is recording."""
        run = self.run
        if run is None:
            return None
        return run.store.state(run.worker_shares)

    def on_worker_connect(self, client_id, **_kwargs) -> None:
        if self.run is not None and self.run.running:
            self.run.watch.joined(client_id)
        else:
            self.joined.append((time.time(), client_id))

    def finish(self) -> None:
        """Write the folder of the current run: the rest of metrics.jsonl, errors.csv, CSV, run.json, verdicts."""
        run, self.run = self.run, None
        if self._pending_finish is not None and self._pending_finish is not gevent.getcurrent():
            self._pending_finish.kill()
        self._pending_finish = None
        if run is None:
            return
        environment = self.environment
        total = environment.stats.total
        if self.final_reports is not None:
            self._record_missing_final_reports(run)
            self.final_reports = None
        rate = self._open_model_rate(run)  # before the run closes its events
        facts = run.stop(locust_total=total)
        if rate:
            facts["open_model"] = rate
        self.csv.finish()
        failure = run.write_failure or self.csv.write_failure
        if failure is not None:  # a full disk: the folder stays as written, and reads as incomplete
            print(f"loadkit: {failure}; no {RUN_FILE} written: the run is incomplete", file=sys.stderr, flush=True)
            environment.process_exit_code = 2
            return
        write_run_json(self.folder, **self._run_metadata(facts, total))
        self.written = self.folder
        callbacks, self._on_finished = self._on_finished, []
        for callback in callbacks:
            callback(self.folder)
        print(f"loadkit: results in {self.folder}", flush=True)

    def when_finished(self, callback) -> None:
        if self.run is not None:
            self._on_finished.append(callback)
        elif self.written is not None:
            callback(self.written)

    def _open_model_rate(self, run) -> dict | None:
        """An open-model run's offered/sent/dropped; rate_not_reached (in events.jsonl) when it fell short."""
        from loadkit.metrics._open_model import open_totals
        from loadkit.open_model_locust import RATE_NOT_REACHED, pool_of, rate_verdict

        pool = None if self.distributed else pool_of(self.environment)
        counts = pool.counts if pool is not None else None
        if counts is not None:  # this process's own schedule: exact, its last second not folded yet
            totals = {"offered": counts.offered, "sent": counts.started, "dropped": counts.dropped,
                      **pool.generator_load()}
        else:  # a master: every worker's final report is in
            totals = open_totals(run.store.totals.by_key)
        if not totals["offered"]:
            return None
        # the run's events hold every process's CPU warning: a worker's arrive with its reports
        cpu_high = bool(run.events.counts.get(CPU_HIGH) or run.events.counts.get(GENERATOR_CPU_HIGH))
        detail = rate_verdict(totals["offered"], totals["sent"], cpu_high)
        if detail:
            run.events.record(RATE_NOT_REACHED, None, detail)
            print(f"loadkit: {RATE_NOT_REACHED}: {detail}", flush=True)
        return totals

    def _record_missing_final_reports(self, run) -> None:
        """Before the run closes: a worker without a final report that the run does not record
        lost (missing, or silent since the test began to stop) is recorded final_report_missing."""
        run.watch_workers()
        watch = run.watch
        lost = watch.lost | set(watch.silent()) | {w for w, state in watch.states.items() if state == watch.missing}
        self.final_reports.record_missing(run.events, lost)

    def _run_metadata(self, facts: dict, total) -> dict:
        environment = self.environment
        options = environment.parsed_options
        metadata = {
            "command": " ".join([_program_name(), *sys.argv[1:]]),
            "locustfile": getattr(options, "locustfile", None),
            "target": environment.host,
            "user_classes": [cls.__name__ for cls in environment.user_classes],
            "users": getattr(options, "num_users", None),
            "spawn_rate": getattr(options, "spawn_rate", None),
            "duration": getattr(options, "run_time", None),
            "requests": total.num_requests,
            "failures": total.num_failures,
            **facts,
        }
        if self.checks:
            metadata["checks"] = [check.expression for check in self.checks]
        return metadata


def _program_name() -> str:
    name = Path(sys.argv[0]).name
    return "locust" if name in ("__main__.py", "") else name

