"""``loadkit report RESULTS [-o FILE]``: build the HTML report of a results folder."""

from __future__ import annotations

import argparse

from loadkit.report import DEFAULT_OUTPUT, ReportError, build_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        metavar="RESULTS",
        help="a results folder, or the --csv PREFIX of a Locust run (e.g. reports/run1/locust)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help=f"where to write the HTML (default: {DEFAULT_OUTPUT} next to the CSV files)",
    )


def run(args: argparse.Namespace) -> int:
    from loadkit.cli import CommandError  # here, not at the top: cli imports this module

    try:
        path = build_report(args.results, args.output)
    except ReportError as error:
        raise CommandError(str(error)) from None
    print(path)
    return 0
