"""``loadkit check RESULTS --check EXPR [--check EXPR ...] [--json FILE] [--junit FILE]``.

Checks thresholds (see `loadkit.thresholds`) against a run's results: a
loadkit results folder, a Locust ``--csv`` PREFIX or a ``--json-file``
output, read like ``loadkit report`` reads them. Prints a verdict table and
what the readers skipped. Exit codes: 0 every threshold passed, 3 one
failed or could not be measured (or the run never finished), 2 bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path

from loadkit.errors import UsageError
from loadkit.thresholds import EXAMPLES, evaluate_with_notes, exit_code, format_table, write_json, write_junit


def add_arguments(parser):
    parser.add_argument("results", metavar="RESULTS",
                        help="a results folder, a Locust --csv PREFIX (e.g. run1/locust) or a Locust --json-file output")
    parser.add_argument("--check", action="append", required=True, metavar="EXPR",
                        help=f"a threshold, repeatable: {EXAMPLES}, run_complete")
    parser.add_argument("--json", metavar="FILE", help="also write the verdicts as JSON")
    parser.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML")


def run(args) -> int:
    verdicts, notes = evaluate_with_notes(args.results, args.check)  # ThresholdError: one line, exit 2
    print(format_table(verdicts, notes))
    try:
        if args.json:
            write_json(verdicts, Path(args.json), notes)
        if args.junit:
            write_junit(verdicts, Path(args.junit))
    except OSError as error:
        raise UsageError(f"cannot write {error.filename}: {error.strerror}") from None
    sys.stdout.flush()
    return exit_code(verdicts)
