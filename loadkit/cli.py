"""The ``loadkit`` command: demo | source | sink | report | target | capacity | options | check.

Each subcommand lives in its own module, which provides
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only
when their subcommand runs: ``source`` and ``demo`` pull in Locust (which
monkey-patches the standard library), ``sink``, ``report`` and ``check`` must not.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from loadkit import __version__
from loadkit.errors import LoadkitError

COMMANDS = {
    "demo": ("loadkit.demo", "start a sink, run a short SMTP load against it, write a report"),
    "source": ("loadkit.source", "send mail like Postfix's smtp-source, on the Locust engine"),
    "sink": ("loadkit.sink.command", "accept and discard mail fast, like Postfix's smtp-sink"),
    "report": ("loadkit.report.command", "build the HTML report of a results folder"),
    "target": ("loadkit.instances.command", "start, stop or check a real Postfix, Dovecot or Apache on loopback"),
    "capacity": ("loadkit.capacity.command", "find the highest rate a target sustains under limits (--slo 'p99<200ms')"),
    "options": ("loadkit.options", "list loadkit's options of the locust command line, with their help"),
    "check": ("loadkit.check", "check thresholds (p95<250ms, fail_ratio<0.01, ...) against a results folder"),
    "serve": ("loadkit.serve", "serve a results folder, its report and an archive of it over HTTP for a while"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr, not usage plus error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, str | None]:
    parser = OneLineParser(prog="loadkit", description="Load testing for mail servers, built on Locust.")
    parser.add_argument("--version", action="version", version=f"loadkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the module that will run
            importlib.import_module(module_name).add_arguments(command_parser)
    return parser, wanted


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser, wanted = build_parser(argv)
    except KeyboardInterrupt:  # Ctrl-C while the command's module (Locust, for some) is still importing
        print("loadkit: interrupted while starting", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return module.run(args)
    except LoadkitError as error:
        print(f"loadkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"loadkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
