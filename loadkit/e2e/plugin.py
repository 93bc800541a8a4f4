"""The Locust side of an end-to-end run: options, accepted messages, the drain at the end.

Registered by `loadkit.plugin` (`add_options`, `register_e2e(events, results)`),
it adds four options to the ``locust`` command line:

    --e2e-postfix-state DIR   the state folder of the Postfix instance the
                              users send through (``loadkit target postfix up
                              --dir DIR``; default $LOADKIT_POSTFIX_STATE, else
                              reports/instances/postfix): its queue is drained
                              and its sink's trace log read
    --e2e-trace-log PATH      the sink's trace log, when the relay delivers to
                              a sink of your own (``loadkit sink --trace-log``)
    --e2e-drain-timeout S     seconds to wait for the queue to empty (default 60)
    --e2e-sink HOST:PORT      the sink, for workers to measure their clock
                              offset to it (default: the Postfix instance's sink)

It works for the runs whose users remember what was accepted
(`loadkit.users.TracedSmtpUser`, which calls `remember_accepted`). At the
end of a test the queue is drained and ``e2e.json`` written into the run's
results folder (see `loadkit.e2e`).

In a distributed run each worker measures the offset between its clock and
the sink's when its test starts (`loadkit.e2e._clock`), and adds to each of
its reports to the master (the ``loadkit_e2e`` key, next to the metrics) the
trace ids accepted since its previous report, and once its offset. The
master drains and counts once its workers' final reports are in: the results
folder's listener, registered before this one, waits for them at test_stop.
While the test runs, the master only keeps each report's trace ids as they
came (ranges) and adds them up when the test stops: a report costs it next
to nothing, however many messages it names.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gevent
from locust.runners import MasterRunner, WorkerRunner

from loadkit.e2e._clock import METHOD as CLOCK_METHOD
from loadkit.e2e._clock import ClockError, measure_sink_clock_offset
from loadkit.e2e._delivery import (
    DRAIN_INTERVAL,
    AcceptedMessages,
    delivery_summary,
    postfix_queue_size,
    sink_trace_log,
    write_e2e,
)
from loadkit.results import ResultsError, instance_path, read_instance
from loadkit.urls import TargetError, parse_endpoint, parse_url

log = logging.getLogger(__name__)

DEFAULT_POSTFIX_STATE = "reports/instances/postfix"
DEFAULT_DRAIN_TIMEOUT = 60.0
PAYLOAD_KEY = "loadkit_e2e"  # in a worker's reports to the master

accepted = AcceptedMessages()  # of this process (of all workers, on a master): every traced user adds to it


def remember_accepted(message: bytes) -> None:
    """A traced user's message the target accepted (queued for at least one recipient)."""
    accepted.add(message)


def traced(environment) -> bool:
    """Whether a user class of this run remembers accepted messages (`loadkit.users.TracedSmtpUser`)."""
    return any(getattr(user_class, "traced_end_to_end", False) for user_class in environment.user_classes)


def add_options(parser) -> None:
    parser.add_argument(
        "--e2e-postfix-state", metavar="DIR", include_in_web_ui=False,
        default=os.environ.get("LOADKIT_POSTFIX_STATE", DEFAULT_POSTFIX_STATE),
        help="loadkit: state folder of the Postfix instance to drain and whose sink to read",
    )
    parser.add_argument(
        "--e2e-trace-log", metavar="PATH", include_in_web_ui=False,
        help="loadkit: the sink's --trace-log (default: the Postfix instance's sink)",
    )
    parser.add_argument(
        "--e2e-sink", metavar="HOST:PORT", include_in_web_ui=False,
        help="loadkit: the sink, for workers to measure their clock offset to it (default: the Postfix instance's sink)",
    )
    parser.add_argument(
        "--e2e-drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT, metavar="SECONDS", include_in_web_ui=False,
        help="loadkit: seconds to wait for the relay's queue to empty at the end (default 60)",
    )


class WorkerSide:
    """On a worker: the clock offset to the sink, and what goes into each report."""

    def __init__(self, environment):
        self.environment = environment
        self.clock: dict | None = None  # measured, not sent yet
        self._measuring = None

    def install(self) -> None:
        global accepted
        accepted = AcceptedMessages(journal=True)
        self.environment.events.test_start.add_listener(self.on_test_start)
        self.environment.events.report_to_master.add_listener(self.on_report_to_master)

    def on_test_start(self, environment, **_kwargs) -> None:
        # Runs in the worker's message loop: measure beside it, not in it.
        self._measuring = gevent.spawn(self.measure_clock)

    def measure_clock(self) -> None:
        address = sink_address(self.environment.parsed_options)
        if address is None:
            self.clock = {"error": "no sink address: pass --e2e-sink HOST:PORT"}
        else:
            try:
                self.clock = measure_sink_clock_offset(*address).to_json()
            except ClockError as error:
                self.clock = {"error": str(error)}
        if "error" in self.clock:
            log.warning("loadkit e2e: clock offset not measured: %s", self.clock["error"])

    def on_report_to_master(self, client_id, data, **_kwargs) -> None:
        payload = {}
        new = accepted.take_new()
        if new is not None:
            payload["new"] = new
        if self.clock is not None:
            payload["clock"], self.clock = self.clock, None
        if payload:
            data[PAYLOAD_KEY] = payload


class MasterSide:
    """On a master: the workers' accepted trace ids and clock offsets, e2e.json after their last reports."""

    def __init__(self, environment, results):
        self.environment = environment
        self.results = results
        self.worker_clocks: dict[str, dict] = {}  # client id -> its clock offset (or error)
        self.worker_sources: dict[str, set[str]] = {}  # client id -> the source tags of its messages
        self.unmerged: list[dict] = []  # reports' trace ids (`take_new`), added to `accepted` at test_stop
        self._pending = None

    def install(self) -> None:
        events_ = self.environment.events
        events_.test_start.add_listener(self.on_test_start)
        events_.worker_report.add_listener(self.on_worker_report)
        events_.test_stop.add_listener(self.on_test_stop)
        events_.quitting.add_listener(self.on_quitting)

    def on_test_start(self, environment, **_kwargs) -> None:
        self.write_now()  # a new test from the web UI before the last one's e2e.json
        accepted.clear()
        self.unmerged.clear()
        self.worker_clocks.clear()
        self.worker_sources.clear()

    def on_worker_report(self, client_id, data, **_kwargs) -> None:
        payload = data.get(PAYLOAD_KEY)
        if not payload:
            return
        new = payload.get("new")
        if new is not None:
            self.worker_sources.setdefault(client_id, set()).update(source for _run, source, _ranges in new.get("accepted", ()))
            self.unmerged.append(new)
            if self._pending is not None:  # the test stopped: counting has begun, add it now
                self.merge_accepted()
        if "clock" in payload:
            self.worker_clocks[client_id] = payload["clock"]

    def on_test_stop(self, environment, **_kwargs) -> None:
        # The workers' final reports are in (the results listener waited for them); the drain
        # may take a while, so it runs beside the master's stop, and quitting waits for it.
        if self._pending is None:
            self._pending = gevent.spawn(self._write)
            self.results.add_finisher(environment, self._pending)  # the checks read e2e.json: they wait

    def on_quitting(self, environment, **_kwargs) -> None:
        self.write_now()

    def write_now(self) -> None:
        """Wait for the e2e.json of the last test to be written."""
        pending = self._pending
        if pending is not None and pending is not gevent.getcurrent():
            pending.join()

    def merge_accepted(self) -> None:
        """Add the trace ids the workers reported into `accepted`."""
        unmerged, self.unmerged = self.unmerged, []
        for new in unmerged:
            accepted.merge(new)

    def _write(self) -> None:
        self.merge_accepted()
        try:
            write_results(self.environment, self.results, self.clock_record())
        finally:
            self._pending = None

    def clock_record(self) -> dict:
        """e2e.json's clock fields: each source's offset, from its worker's measurement."""
        offsets, round_trips, unmeasured = {}, {}, {}
        for client_id, sources in self.worker_sources.items():
            clock = self.worker_clocks.get(client_id) or {"error": "the worker sent no clock offset"}
            for source in sorted(sources):
                if "offset_ms" in clock:
                    offsets[source] = clock["offset_ms"]
                    round_trips[source] = clock["round_trip_ms"]
                else:
                    unmeasured[source] = clock["error"]
        record = {"clock_offsets_ms": offsets, "clock_round_trips_ms": round_trips, "clock_offset_method": CLOCK_METHOD}
        if unmeasured:
            record["clock_offsets_unmeasured"] = unmeasured
        return record


def sink_address(options) -> tuple[str, int] | None:
    """(host, port) of the sink: --e2e-sink, else the Postfix instance's sink or relay target."""
    text = getattr(options, "e2e_sink", None)
    try:
        if text:
            return parse_endpoint(text).address
        info = read_instance(Path(options.e2e_postfix_state)) or {}
        sink = info.get("sink") if isinstance(info.get("sink"), dict) else {}
        url = sink.get("url") or info.get("relay_url")
        target = parse_url(url) if isinstance(url, str) and url else None
    except (ResultsError, TargetError):
        return None
    return None if target is None or target.is_unix else target.address


class LocalSide:
    """On a local runner: every test starts from nothing and ends with e2e.json."""

    def __init__(self, environment, results):
        self.environment = environment
        self.results = results

    def install(self) -> None:
        self.environment.events.test_start.add_listener(self.on_test_start)
        self.environment.events.test_stop.add_listener(self.on_test_stop)

    def on_test_start(self, environment, **_kwargs) -> None:
        accepted.clear()

    def on_test_stop(self, environment, **_kwargs) -> None:
        write_results(environment, self.results, None)


def register_e2e(events, results) -> None:
    """Add end-to-end delivery's init listener to Locust's `events`; `results` gives each test's
    folder (`.folder(environment)`). Register it after the results folder's listeners: its
    test_stop listeners then run once the folder exists and the final reports are in."""

    def on_init(environment, runner=None, **_kwargs):
        options = environment.parsed_options
        if options is None or not hasattr(options, "e2e_postfix_state") or not traced(environment):
            return
        if isinstance(runner, WorkerRunner):
            WorkerSide(environment).install()
        elif isinstance(runner, MasterRunner):
            MasterSide(environment, results).install()
        else:
            LocalSide(environment, results).install()

    events.init.add_listener(on_init)


def write_results(environment, results, clock: dict | None) -> None:
    """Drain the relay's queue, count, write e2e.json. `clock`: None on one host."""
    folder = results.folder(environment)
    options = environment.parsed_options
    if folder is None or options is None:
        return
    state = Path(options.e2e_postfix_state)
    trace_log = Path(options.e2e_trace_log) if options.e2e_trace_log else sink_trace_log(state)
    if trace_log is None:
        log.error("loadkit e2e: no trace log: pass --e2e-trace-log or --e2e-postfix-state of a Postfix instance with its sink")
        return
    drained = None
    if instance_path(state).exists():
        from loadkit.instances import drain_queue  # only here: its import is not for every Locust start
        try:
            drained = drain_queue(lambda: postfix_queue_size(state), options.e2e_drain_timeout, DRAIN_INTERVAL)
        except Exception as error:  # noqa: BLE001 - a broken drain still leaves the counts
            log.error("loadkit e2e: cannot read the queue of %s: %s", state, error)
            drained = {"drained": False, "error": str(error)}
        else:
            if not drained["drained"]:
                log.warning("loadkit e2e: %d messages still queued after %.0fs", drained["left"], drained["timeout"])
    offsets = clock.get("clock_offsets_ms") if clock else None
    try:
        summary = delivery_summary(accepted, trace_log, offsets)
    except OSError as error:
        log.error("loadkit e2e: cannot read %s: %s", trace_log, error.strerror or error)
        return
    path = write_e2e(folder, summary, drained, trace_log, environment.host, clock)
    latency = summary["latency_ms"]
    print(
        f"loadkit e2e: accepted {summary['accepted']} delivered {summary['delivered']} lost {summary['lost']} "
        f"duplicated {summary['duplicated']}"
        + (f" delivery p50 {latency['p50']:.1f} ms p99 {latency['p99']:.1f} ms" if latency else "")
        + (f" clock offsets {offsets} ms" if offsets else "")
        + f" -> {path}",
        flush=True,
    )
