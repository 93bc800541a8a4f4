"""``loadkit options``: loadkit's options of the ``locust`` command line, with their help.

Locust's own ``--help`` lists a plugin's options only once a locustfile that
imports it is loaded; this lists them without one. Each also goes in
locust.conf (``rate = 200``) or ``[tool.locust]``.

It also declares the run options of the ready locustfiles' mail users, shown
in the web UI's start form (empty: the locustfile's own value):

    --message-size BYTES          the users' payload_size
    --messages-per-connection N   the users' messages_per_connection (0: no limit)
    --sink-control HOST:PORT      a ``loadkit sink --control`` port: the sink's
                                  counters in the web UI's Mail tab (`loadkit.webui`)

Locust sends the options to its workers with each spawn; every process sets
them on its mail user classes when a test starts (`register_run_options`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import weakref

log = logging.getLogger(__name__)

# option -> the mail user class attribute it sets
RUN_OPTIONS = {"message_size": "payload_size", "messages_per_connection": "messages_per_connection"}


class RunOptionError(ValueError):
    """A run option that is not a count; a ValueError, as argparse reports a bad type."""


def add_arguments(parser) -> None:
    pass


def add_options(parser) -> None:
    parser.add_argument(
        "--message-size", default="", metavar="BYTES", include_in_web_ui=True,
        help="loadkit: message size in bytes of the mail users (empty: the locustfile's payload_size)",
    )
    parser.add_argument(
        "--messages-per-connection", default="", metavar="N", include_in_web_ui=True,
        help="loadkit: messages each mail user sends per connection, 0 for no limit "
             "(empty: the locustfile's messages_per_connection)",
    )
    parser.add_argument(
        "--sink-control", default="", metavar="HOST:PORT", include_in_web_ui=True,
        help="loadkit: the control port of the sink the mail goes to (loadkit sink --control): "
             "its counters in the web UI's Mail tab",
    )


def count_option(name: str, value) -> int | None:
    """The option's value as a count (None when empty); RunOptionError with one line otherwise."""
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise RunOptionError(f"--{name.replace('_', '-')} {text!r}: expected a whole number of at least 0")
    return int(text)


class RunOptions:
    """Sets the run options on the mail user classes at each test start, and restores what they replaced."""

    def __init__(self):
        self.replaced: dict[tuple[type, str], object] = {}  # (class, attribute) -> the locustfile's value

    def apply(self, environment) -> None:
        options = environment.parsed_options
        if options is None:
            return
        for option, attribute in RUN_OPTIONS.items():
            try:
                value = count_option(option, getattr(options, option, ""))
            except RunOptionError as error:
                log.error("loadkit: %s; the locustfile's value is kept", error)
                continue
            for user_class in environment.user_classes:
                if not hasattr(user_class, "messages_per_connection") or not hasattr(user_class, attribute):
                    continue  # not a mail user
                key = (user_class, attribute)
                if value is None:
                    if key in self.replaced:
                        setattr(user_class, attribute, self.replaced.pop(key))
                    continue
                self.replaced.setdefault(key, user_class.__dict__.get(attribute, getattr(user_class, attribute)))
                setattr(user_class, attribute, value)

    def on_test_start(self, environment, **_kwargs) -> None:
        self.apply(environment)


def run_option_problem(values) -> str | None:
    """Why run options given as {option: value} cannot be used, in one line; None when they can."""
    for option in RUN_OPTIONS:
        try:
            count_option(option, values.get(option, ""))
        except RunOptionError as error:
            return str(error)
    return None


def _check_at_start(environment, runner=None, **_kwargs) -> None:
    """A bad value on the command line ends the run before it starts (the web form is checked at /swarm)."""
    from locust.runners import WorkerRunner

    options = environment.parsed_options
    if options is None or runner is None or isinstance(runner, WorkerRunner):
        return
    problem = run_option_problem(vars(options))
    if problem:
        print(f"loadkit: {problem}", file=sys.stderr)
        sys.exit(2)


_registered: weakref.WeakSet = weakref.WeakSet()


def register_run_options(events) -> None:
    """Set the run options on the mail users at each test start of Locust's `events` (once)."""
    if events in _registered:
        return
    _registered.add(events)
    events.init.add_listener(_check_at_start)
    events.test_start.add_listener(RunOptions().on_test_start)


class _Collect:
    """Stands in for Locust's parser: records each add_argument call."""

    def __init__(self):
        self.options: list[tuple[str, str]] = []

    def add_argument(self, *names, help="", metavar=None, choices=None, **_kwargs):
        shown = ", ".join(names)
        if choices:
            shown += " {" + ",".join(choices) + "}"
        elif metavar:
            shown += f" {metavar}"
        self.options.append((shown, help.removeprefix("loadkit: ")))

    def add_argument_group(self, *_args, **_kwargs):
        return self


def loadkit_options() -> list[tuple[str, str]]:
    from loadkit import open_model_locust
    from loadkit.e2e import plugin as e2e_plugin
    from loadkit.metrics import plugin as metrics_plugin
    from loadkit.probes import plugin as probes_plugin

    collect = _Collect()
    for module in (metrics_plugin, e2e_plugin, probes_plugin, open_model_locust):
        module.add_options(collect)
    add_options(collect)
    return collect.options


def run(args: argparse.Namespace) -> int:
    print("loadkit's options of the locust command line (also in locust.conf):\n")
    for shown, help_text in loadkit_options():
        print(f"  {shown}\n      {help_text.replace('%%', '%')}")
    return 0
