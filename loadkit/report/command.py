"""``loadkit report RESULTS [-o FILE] [--baseline OTHER] [--check EXPR ...]``.

Writes the HTML report of a results folder (or of a plain Locust run's
``--csv`` prefix or ``--json-file``). With ``--check``, the thresholds are
evaluated, shown in the report, and a failed one makes the exit code 3
once the report is written.
"""

from __future__ import annotations

import argparse
import sys

from loadkit.errors import LoadkitError
from loadkit.report import DEFAULT_OUTPUT, Progress, build_report

EXIT_THRESHOLD_FAILED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        metavar="RESULTS",
        help="a results folder, a Locust --csv PREFIX (e.g. run1/locust) or a Locust --json-file output",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help=f"where to write the HTML (default: {DEFAULT_OUTPUT} in the results folder)",
    )
    parser.add_argument(
        "--baseline",
        metavar="OTHER_RESULTS",
        help="another run to compare with: drawn on the same charts, and what got worse is flagged",
    )
    parser.add_argument(
        "--check",
        action="append",
        metavar="EXPR",
        help="a threshold, repeatable (e.g. p95<250ms, fail_ratio<1%%); exit code 3 when one fails",
    )


def _verdicts(results: str, expressions: list[str]) -> list[dict]:
    from loadkit.thresholds import as_dicts, evaluate

    verdicts = evaluate(results, expressions)  # read like the report reads it: same notes on the page
    return as_dicts(verdicts)


def run(args: argparse.Namespace) -> int:
    progress = Progress()
    try:
        verdicts = _verdicts(args.results, args.check) if args.check else None
        path = build_report(args.results, args.output, baseline=args.baseline, verdicts=verdicts, progress=progress)
    except LoadkitError:
        progress.clear()  # the error's one line starts on a clean line
        raise
    print(path)
    if verdicts is not None:
        failed = [v for v in verdicts if not v.get("passed")]
        for verdict in failed:
            measured = f"measured {verdict.get('measured')}, limit {verdict.get('limit')}"
            reason = verdict.get("error") or verdict.get("detail") or measured
            print(f"loadkit report: threshold failed: {verdict['expression']} ({reason})", file=sys.stderr)
        if failed:
            return EXIT_THRESHOLD_FAILED
    return 0
