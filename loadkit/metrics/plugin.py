"""loadkit's results folder and thresholds on the ``locust`` command line.

Imported by `loadkit.users`, so every locustfile that uses loadkit's users
gets two more Locust options (also from locust.conf or ``[tool.locust]``):

    --results DIR    parent of the run's results folder (default reports/):
                     DIR/<YYYYmmdd-HHMMSS>-<locustfile>/ gets run.json,
                     metrics.jsonl, events.jsonl, errors.csv, Locust's CSV
    --check EXPR     a threshold (repeatable), evaluated at the end: a verdict
                     table, verdicts.json and junit.xml; exit code 3 when one fails

On a local runner the request listener feeds the results directly; on a
distributed run each worker sends its intervals to the master with its
reports (see `_worker`) and the master writes the folder. `loadkit source`
and `loadkit demo` run Locust in-process and never fire Locust's init
event: this module does nothing for them (the demo records explicitly).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadkit import thresholds
from loadkit.results import CSV_PREFIX, RUN_FILE, ResultsError, new_results_folder, write_run_json

DEFAULT_PARENT = "reports"
# After a master stops a test (web UI), workers' last reports arrive within a
# second (see `_worker`); the folder is written after this wait, or at quit
# (a headless run quits about a second after its test stops).
MASTER_STOP_WAIT = 4.0
# When a test stops, a master waits this long for each live worker to speak once
# more (workers send a heartbeat every second): one that stays silent is recorded lost.
FINAL_WORD_WAIT = 2.0

_controller = None


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs):
    parser.add_argument(
        "--results", default=DEFAULT_PARENT, metavar="DIR", include_in_web_ui=False,
        help="loadkit: parent folder of the run's results folder (default reports/)",
    )
    parser.add_argument(
        "--check", action="append", default=None, metavar="EXPR", include_in_web_ui=False,
        help="loadkit: threshold checked at the end, repeatable: p95<250ms, send:fail_ratio<0.01, "
             "phase.rcpt:p99<20ms, rps>500, no_worker_lost; exit code 3 when one fails",
    )


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs):
    global _controller
    options = environment.parsed_options
    if options is None or not hasattr(options, "results"):
        return  # Locust run in-process, or options that are not ours
    if isinstance(runner, WorkerRunner):
        from loadkit.metrics._worker import WorkerReporter

        WorkerReporter(environment).install()
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
    _controller = ResultsController(environment, runner, parent, checks)
    _controller.install()


def results_folder(environment) -> Path | None:
    """The results folder of `environment`'s current or last run (None before one, or on a worker).

    For modules that add their own files to it (probes, end-to-end delivery).
    """
    if _controller is not None and _controller.environment is environment:
        return _controller.folder
    return None


def record_event(environment, kind: str, detail: str) -> bool:
    """Add an event to events.jsonl of `environment`'s running test; False when none runs."""
    run = _controller.run if _controller is not None and _controller.environment is environment else None
    if run is None or not run.running:
        return False
    run.events.record(kind, None, detail)
    return True


def _fail_at_start(message: str):
    print(f"loadkit: {message}", file=sys.stderr)
    sys.exit(2)


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs):
    """Registered at import, before loadkit.users' own test_stop listener (which waits a
    second for Locust's CSV writer): the run's stop time is when its users stopped."""
    if _controller is not None and _controller.environment is environment:
        _controller.on_test_stop()


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs):
    """Registered at import, before Locust creates its runner: Locust fires `quitting`
    in reverse order, so a master has already sent quit to its workers and waited for
    their last reports when this runs."""
    if _controller is not None and _controller.environment is environment:
        _controller.quitting()


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
        self._pending_finish = None

    def install(self) -> None:
        events_ = self.environment.events
        events_.test_start.add_listener(self.on_test_start)
        events_.cpu_warning.add_listener(self.on_cpu_warning)
        if self.distributed:
            events_.worker_report.add_listener(self.on_worker_report)
            events_.worker_connect.add_listener(self.on_worker_connect)
            events_.heartbeat_sent.add_listener(self.on_worker_heard)
            events_.test_stopping.add_listener(self.on_test_stopping)

    def on_test_start(self, environment, **_kwargs) -> None:
        from loadkit.metrics._csv import LocustCsv
        from loadkit.metrics._recorder import RequestRecorder
        from loadkit.metrics._run import MASTER_SETTLE, RunRecorder

        if self.run is not None:
            self.finish()  # the web UI started a new test: close the previous folder first
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
            self.run = RunRecorder(environment, self.folder, RequestRecorder()).start()

    def on_test_stopping(self, environment, **_kwargs) -> None:
        if self.run is not None and self.run.running and self.runner is not None:
            self.run.watch.stopping(self.runner.clients)

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
        self._wait_for_final_word()
        if self._pending_finish is None:
            self._pending_finish = gevent.spawn_later(MASTER_STOP_WAIT, self.finish)

    def quitting(self) -> None:
        if self.run is None:
            return
        if not self.distributed and self.run.running and self.runner is not None:
            self.runner.stop()  # interrupted: stop the users so Locust's totals are final (finishes via test_stop)
        self.finish()

    def _wait_for_final_word(self) -> None:
        """A worker killed in the last seconds is not missing yet for Locust: give every
        live worker time for one more heartbeat, so the silent ones are told apart."""
        deadline = time.monotonic() + FINAL_WORD_WAIT
        while self.run is not None and self.run.watch.silent() and time.monotonic() < deadline:
            gevent.sleep(0.1)

    def on_worker_report(self, client_id, data, **_kwargs) -> None:
        from loadkit.metrics._worker import PAYLOAD_KEY

        if self.run is not None:
            self.run.watch.heard(client_id)
        payload = data.get(PAYLOAD_KEY)
        if payload and self.run is not None:
            self.run.add_worker_report(client_id, payload)

    def on_worker_connect(self, client_id, **_kwargs) -> None:
        if self.run is not None and self.run.running:
            self.run.watch.joined(client_id)
        else:
            self.joined.append((time.time(), client_id))

    def on_cpu_warning(self, environment, cpu_usage, **_kwargs) -> None:
        if self.run is not None and self.run.running:
            where = "master" if self.distributed else "Locust process"
            self.run.events.record("cpu_high", None, f"{where} CPU at {cpu_usage:.0f}%")

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
        facts = run.stop(locust_total=total)
        self.csv.finish()
        failure = run.write_failure or self.csv.write_failure
        if failure is not None:  # a full disk: the folder stays as written, and reads as incomplete
            print(f"loadkit: {failure}; no {RUN_FILE} written: the run is incomplete", file=sys.stderr, flush=True)
            environment.process_exit_code = 2
            return
        write_run_json(self.folder, **self._run_metadata(facts, total))
        if self.checks:
            self._check(self.folder)
        print(f"loadkit: results in {self.folder}", flush=True)

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

    def _check(self, folder: Path) -> None:
        verdicts = thresholds.evaluate(folder, self.checks)
        thresholds.write_verdicts(folder, verdicts)
        print(thresholds.format_table(verdicts), flush=True)
        if not thresholds.all_passed(verdicts):
            self.environment.process_exit_code = thresholds.EXIT_FAILED


def _program_name() -> str:
    name = Path(sys.argv[0]).name
    return "locust" if name in ("__main__.py", "") else name


# --probe on the locust command. Imported last: its init listener then runs after ours,
# so its probes start once this test's results folder exists.
from loadkit.probes import plugin as _probes_plugin  # noqa: E402, F401
