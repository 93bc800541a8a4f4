"""``--probe`` on the locust command line: probes sampled during each test of a local runner or master.

    --probe postfix[=STATE_DIR]     a loadkit Postfix instance (default reports/instances/postfix)
    --probe apache=STATUS_URL       mod_status, e.g. http://127.0.0.1:8080/server-status?auto
    --probe host                    psutil: this machine, this process, the postfix probe's processes

Registered by `loadkit.plugin` after the results folder's listeners
(`register_probes(events, results)`). Its test listeners are added at init,
after the locustfile's own: the probes start once the results folder exists
and stop after the locustfile's end-of-test work (an end-to-end drain is
still sampled). A master drains beside its stop: its probes take their last
sample once the drain is done (`results.finishers`), and are a finisher themselves.
With a postfix probe, ``postfix_log.json`` is written at the end.
"""

from __future__ import annotations

import logging
import os
import sys

import gevent
from locust.runners import WorkerRunner

from loadkit.probes._apache import ApacheStatusProbe
from loadkit.probes._base import ProbeError, parse_probe_spec
from loadkit.probes._host import HostProbe
from loadkit.probes._postfix import PostfixQueueProbe
from loadkit.probes._postfix_log import postfix_log_summary, wait_for_quiet_log, write_postfix_log
from loadkit.probes._sampler import PROBES_FILE, ProbeSampler

log = logging.getLogger(__name__)


def add_options(parser) -> None:
    parser.add_argument(
        "--probe", action="append", default=None, metavar="NAME[=ARG]", include_in_web_ui=False,
        help=f"loadkit: sample the server side once a second into {PROBES_FILE} (repeatable): "
             "postfix[=STATE_DIR], apache=STATUS_URL, host",
    )


def register_probes(events, results) -> None:
    """Add the probes' init listener to Locust's `events`; `results` gives each test's folder
    (`.folder(environment)`) and takes integrity events (`.record_event(environment, kind, detail)`)."""

    def on_init(environment, runner=None, **_kwargs):
        options = environment.parsed_options
        specs = getattr(options, "probe", None) if options is not None else None
        if not specs or isinstance(runner, WorkerRunner):
            return
        try:
            parsed = [parse_probe_spec(spec) for spec in specs]
        except ProbeError as error:
            print(f"loadkit: {error}", file=sys.stderr)
            sys.exit(2)
        controller = ProbeController(environment, parsed, results)
        environment.events.test_start.add_listener(controller.on_test_start)
        environment.events.test_stop.add_listener(controller.on_test_stop)
        environment.events.quitting.add_listener(controller.on_quitting)

    events.init.add_listener(on_init)


class ProbeController:
    """Builds the probes of each test, runs their sampler, writes postfix_log.json at the end."""

    def __init__(self, environment, specs: list[tuple[str, str | None]], results):
        self.environment = environment
        self.specs = specs
        self.results = results
        self.sampler: ProbeSampler | None = None
        self.postfix_log: tuple[object, int] | None = None  # (path, offset at start)
        self.folder = None
        self._finishing = None  # the greenlet that ends the test after a drain beside the stop

    def _probes(self) -> list:
        probes, postfix_probe = [], None
        for name, argument in self.specs:
            if name == "postfix":
                postfix_probe = PostfixQueueProbe(argument)
                probes.append(postfix_probe)
            elif name == "apache":
                probes.append(ApacheStatusProbe(argument))
        for name, _argument in self.specs:
            if name == "host":
                pids = []
                if postfix_probe is not None:
                    try:
                        pids = postfix_probe.process_ids()
                    except ProbeError:
                        pass  # the postfix probe says so itself
                probes.append(HostProbe(pids, on_saturated=self._record_saturation))
        self._remember_log_start(postfix_probe)
        return probes

    def _remember_log_start(self, postfix_probe) -> None:
        self.postfix_log = None
        if postfix_probe is None:
            return
        try:
            path = postfix_probe.log_path
            self.postfix_log = (path, os.path.getsize(path) if path.exists() else 0)
        except (ProbeError, OSError):
            pass

    def on_test_start(self, environment, **_kwargs) -> None:
        self.wait_until_ended()  # a new test from the web UI before the last one has ended
        self.stop()
        self.folder = self.results.folder(environment)
        if self.folder is None:
            return
        self.sampler = ProbeSampler(self._probes(), self.folder, on_failure=self._record_failure).start()

    def _record_failure(self, name: str, message: str) -> None:
        self.results.record_event(self.environment, "probe_failed", f"{name}: {message}")

    def _record_saturation(self, detail: str) -> None:
        from loadkit.metrics.plugin import record_event
        from loadkit.results._events import HOST_CPU_SATURATED

        record_event(self.environment, HOST_CPU_SATURATED, detail)

    def on_test_stop(self, environment, **_kwargs) -> None:
        running = [greenlet for greenlet in self.results.finishers(environment) if not greenlet.dead]
        if not running:
            self._end_of_test()
            return
        self._finishing = gevent.spawn(self._end_of_test, running)
        self.results.add_finisher(environment, self._finishing)

    def on_quitting(self, environment, **_kwargs) -> None:
        self.wait_until_ended()

    def wait_until_ended(self) -> None:
        finishing = self._finishing
        if finishing is not None and finishing is not gevent.getcurrent():
            finishing.join()

    def _end_of_test(self, after=()) -> None:
        """The last sample and postfix_log.json, once the finishers `after` (a master's drain) are done."""
        gevent.joinall(after)
        self.stop()
        if self.postfix_log is None or self.folder is None:
            return
        path, offset = self.postfix_log
        try:
            wait_for_quiet_log(path, sleep=gevent.sleep)
            write_postfix_log(self.folder, postfix_log_summary(path, offset))
        except OSError as error:
            log.warning("loadkit probe postfix: cannot read its log %s: %s", path, error.strerror or error)

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.sample_once()  # the state at the end, drained queue included
            self.sampler.stop()
            self.sampler = None
