"""``loadkit check RESULTS --check EXPR [--check EXPR ...] [--json FILE] [--junit FILE]``, and ``--check`` on ``locust``.

Checks thresholds (see `loadkit.thresholds`) against a run's results: a
loadkit results folder, a Locust ``--csv`` PREFIX or a ``--json-file``
output, read like ``loadkit report`` reads them. Prints a verdict table and
what the readers skipped. Exit codes: 0 every threshold passed, 3 one
failed or could not be measured (or the run never finished), 2 bad input.

On the ``locust`` command line (`register_checks`, from `loadkit.plugin`),
the same thresholds are checked once a test's folder is complete: after the
finishers (the end-to-end drain that writes e2e.json, the probes' last
sample of the queue), so ``e2e.`` and ``queue_`` checks read final values.
"""

from __future__ import annotations

import sys
from pathlib import Path

from loadkit.errors import UsageError
from loadkit.thresholds import (
    EXAMPLES,
    EXIT_FAILED,
    all_passed,
    evaluate,
    evaluate_with_notes,
    exit_code,
    format_table,
    write_json,
    write_junit,
    write_verdicts,
)


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


class ChecksAtEnd:
    """The thresholds of one Locust environment: verdicts.json, junit.xml and the table once a test's
    folder is complete. They are read at the test's stop, since the web UI's start form can set them."""

    def __init__(self, environment, results):
        self.environment = environment
        self.results = results

    def on_test_stop(self, environment, **_kwargs) -> None:
        expressions = [threshold.expression for threshold in self.results.checks(environment)]
        if expressions:  # the finishers' test_stop listeners ran before this one; a master writes its folder later
            self.results.when_finished(environment, lambda folder: self.check(folder, expressions))

    def check(self, folder: Path, expressions: list[str]) -> None:
        self.results.wait_for_finishers(self.environment)  # a master's e2e drain may outlast its folder
        verdicts = evaluate(folder, expressions)
        write_verdicts(folder, verdicts)
        print(format_table(verdicts), flush=True)
        if not all_passed(verdicts):
            self.environment.process_exit_code = EXIT_FAILED


def register_checks(events, results) -> None:
    """Add the thresholds' init listener to Locust's `events`; `results` holds each test's thresholds
    (`.checks(environment)`: ``--check``'s, parsed and refused with exit 2 by the results folder's
    init listener, or the web UI form's) and says when its folder is written (`.when_finished`).
    Register it after the finishers (end-to-end delivery, probes): its test_stop listener is then
    added after theirs, so it runs once they are done; a finisher that goes on beside the stop (a
    master's drain) is waited for through `results.wait_for_finishers`."""

    def on_init(environment, **_kwargs):
        if hasattr(environment.parsed_options, "check"):  # not: Locust run in-process, or not with loadkit's options
            environment.events.test_stop.add_listener(ChecksAtEnd(environment, results).on_test_stop)

    events.init.add_listener(on_init)
