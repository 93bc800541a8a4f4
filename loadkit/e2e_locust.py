"""The Locust side of an end-to-end run: options, the traced user, the drain at the end.

Importing this module adds three options to the ``locust`` command line:

    --e2e-postfix-state DIR   the state folder of the Postfix instance the
                              users send through (``loadkit target postfix up
                              --dir DIR``; default $LOADKIT_POSTFIX_STATE, else
                              reports/instances/postfix): its queue is drained
                              and its sink's trace log read
    --e2e-trace-log PATH      the sink's trace log, when the relay delivers to
                              a sink of your own (``loadkit sink --trace-log``)
    --e2e-drain-timeout S     seconds to wait for the queue to empty (default 60)

At the end of a test (local runner) the queue is drained and ``e2e.json``
written into the run's results folder (see `loadkit.e2e`). Distributed runs
do not collect the workers' accepted messages yet: the master says so and
writes no e2e.json.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadkit.e2e import AcceptedMessages, delivery_summary, drain, postfix_queue_size, sink_trace_log, write_e2e
from loadkit.metrics.plugin import results_folder
from loadkit.users import SmtpUser

log = logging.getLogger(__name__)

DEFAULT_POSTFIX_STATE = "reports/instances/postfix"
DEFAULT_DRAIN_TIMEOUT = 60.0

accepted = AcceptedMessages()  # of this process: every traced user adds to it


class TracedSmtpUser(SmtpUser):
    """An `SmtpUser` that remembers the trace id of every message the target accepted."""

    abstract = True

    def send(self, name: str = "send", recipients: list[str] | None = None, message: bytes | None = None):
        data = self.messages.build() if message is None else message
        delivery = super().send(name, recipients, data)
        if delivery is not None and delivery.delivered:  # queued for at least one recipient
            accepted.add(data)
        return delivery


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs):
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
        "--e2e-drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT, metavar="SECONDS", include_in_web_ui=False,
        help="loadkit: seconds to wait for the relay's queue to empty at the end (default 60)",
    )


@events.test_start.add_listener
def _forget_previous_test(environment, **_kwargs):
    accepted.sequences.clear()
    accepted.untraced = 0


@events.test_stop.add_listener
def _drain_and_count(environment, **_kwargs):
    """Registered after the results plugin's listener: the folder exists when this runs."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return
    if isinstance(runner, MasterRunner):
        log.warning("loadkit e2e: distributed runs do not collect accepted messages yet; no e2e.json")
        return
    folder = results_folder(environment)
    options = environment.parsed_options
    if folder is None or options is None:
        return
    state = Path(options.e2e_postfix_state)
    trace_log = Path(options.e2e_trace_log) if options.e2e_trace_log else sink_trace_log(state)
    if trace_log is None:
        log.error("loadkit e2e: no trace log: pass --e2e-trace-log or --e2e-postfix-state of a Postfix instance with its sink")
        return
    drained = None
    if (state / "instance.json").exists():
        try:
            drained = drain(lambda: postfix_queue_size(state), options.e2e_drain_timeout)
        except Exception as error:  # noqa: BLE001 - a broken drain still leaves the counts
            log.error("loadkit e2e: cannot read the queue of %s: %s", state, error)
            drained = {"drained": False, "error": str(error)}
        else:
            if not drained["drained"]:
                log.warning("loadkit e2e: %d messages still queued after %.0fs", drained["left"], drained["timeout"])
    try:
        summary = delivery_summary(accepted, trace_log)
    except OSError as error:
        log.error("loadkit e2e: cannot read %s: %s", trace_log, error.strerror or error)
        return
    path = write_e2e(folder, summary, drained, trace_log, environment.host)
    latency = summary["latency_ms"]
    print(
        f"loadkit e2e: accepted {summary['accepted']} delivered {summary['delivered']} lost {summary['lost']} "
        f"duplicated {summary['duplicated']}"
        + (f" delivery p50 {latency['p50']:.1f} ms p99 {latency['p99']:.1f} ms" if latency else "")
        + f" -> {path}",
        flush=True,
    )
