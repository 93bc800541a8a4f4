"""Thresholds: k6-style pass/fail checks on a results folder, and ``loadkit check``.

    loadkit check RESULTS --check EXPR [--check EXPR ...] [--json FILE] [--junit FILE]

An expression is ``[SCOPE:]METRIC OP VALUE[UNIT]`` or an integrity check:

    p95<250ms  p99.9<1s  p(99)<=20  max<2s  min>=0.1ms  avg<50  median<30
    fail_ratio<0.01  fail_ratio<1%  rps>500  requests>=1000  failures==0
    send:p95<250ms         requests named "send" (any type; or a type: SMTP:p95<...)
    phase.rcpt:p99<20ms    the RCPT phase of mail requests
    no_worker_lost  no_worker_missing  no_cpu_high

Times default to ms (us, ms, s, m accepted). Latencies come from the run's
HdrHistograms (metrics.jsonl, 3 significant digits); without them, from
Locust's own CSV (locust_stats.csv, whose percentiles Locust rounds). Integrity
checks read events.jsonl. A threshold on something the run never measured
is an error, never a silent pass: errors fail a check like failures do.

`evaluate(folder, expressions) -> list[Verdict]` is what reports use.
Exit codes of ``loadkit check`` (and of a ``locust --check`` run): 0 every
threshold passed, 3 one failed or could not be measured, 2 bad input.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.etree import ElementTree

EXIT_FAILED = 3
VERDICTS_FILE = "verdicts.json"
JUNIT_FILE = "junit.xml"
METRICS_FILE = "metrics.jsonl"
EVENTS_FILE = "events.jsonl"
RUN_FILE = "run.json"
LOCUST_STATS_FILE = "locust_stats.csv"

TIME_UNITS = {"": 1.0, "ms": 1.0, "us": 0.001, "µs": 0.001, "s": 1000.0, "m": 60_000.0}
TIME_METRICS = {"min", "max", "avg", "mean", "median", "med"}
COUNT_METRICS = {"requests", "failures"}
# check -> the events.jsonl kinds it counts (a worker's final report that never came loses its numbers too)
INTEGRITY = {"no_worker_lost": ("worker_lost", "final_report_missing"), "no_worker_missing": ("worker_missing",),
             "no_cpu_high": ("cpu_high",)}
OPERATORS = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b,
}
EXAMPLES = "e.g. p95<250ms, send:fail_ratio<0.01, phase.rcpt:p99<20ms, no_worker_lost"

_EXPRESSION = re.compile(
    r"^(?:(?P<scope>.*):)?\s*(?P<metric>[A-Za-z_]+|p\(?[0-9.]+\)?)\s*"
    r"(?:(?P<op><=|>=|==|<|>)\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>[A-Za-zµ%/]*))?\s*$"
)
_PERCENTILE = re.compile(r"^p\(?([0-9]+(?:\.[0-9]+)?)\)?$")


class ThresholdError(Exception):
    """A threshold expression that cannot be understood; the message is one line."""


@dataclass(frozen=True)
class Threshold:
    """A parsed expression; `limit` is in the metric's unit (ms, ratio, req/s, count)."""

    expression: str
    scope: str | None
    metric: str  # "p95.0", "max", "mean", "fail_ratio", "rps", "requests", "failures", "no_worker_lost"
    op: str
    limit: float

    @property
    def percentile(self) -> float | None:
        return float(self.metric[1:]) if self.metric.startswith("p") and self.metric[1:2].isdigit() else None

    @property
    def unit(self) -> str:
        if self.percentile is not None or self.metric in TIME_METRICS:
            return "ms"
        return {"rps": "req/s"}.get(self.metric, "")


@dataclass
class Verdict:
    """One threshold against one run: passed, failed (measured beyond the limit) or error (not measurable)."""

    expression: str
    measured: float | None
    limit: float | None
    passed: bool
    unit: str = ""
    error: str | None = None
    source: str = ""  # the file the measure came from

    @property
    def status(self) -> str:
        return "error" if self.error else ("passed" if self.passed else "failed")

    @property
    def measured_text(self) -> str:
        return "-" if self.measured is None else _number(self.measured, self.unit)

    @property
    def limit_text(self) -> str:
        return "-" if self.limit is None else _number(self.limit, self.unit)


def _number(value: float, unit: str) -> str:
    text = f"{value:.6g}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"
    return f"{text} {unit}" if unit else text


# -- parsing -------------------------------------------------------------


def parse(expression: str) -> Threshold:
    """A Threshold, or ThresholdError with one line saying what is wrong."""
    text = " ".join(str(expression).split())
    match = _EXPRESSION.match(text)
    if not text or match is None:
        raise ThresholdError(f"cannot read threshold {expression!r}: expected [NAME:]METRIC<VALUE, {EXAMPLES}")
    scope = match["scope"].strip() if match["scope"] is not None else None
    metric = match["metric"].lower()
    op, value, unit = match["op"], match["value"], (match["unit"] or "")
    if scope == "":
        raise ThresholdError(f"threshold {expression!r}: empty name before ':'")
    if metric in INTEGRITY:
        if op is not None:
            raise ThresholdError(f"threshold {expression!r}: {metric} is a check of its own, without a comparison")
        if scope is not None:
            raise ThresholdError(f"threshold {expression!r}: {metric} applies to the whole run, not to {scope!r}")
        return Threshold(text, None, metric, "==", 0.0)
    if op is None:
        raise ThresholdError(f"threshold {expression!r}: no comparison; {EXAMPLES}")
    number = float(value)
    percentile = _PERCENTILE.match(metric)
    if percentile:
        level = float(percentile[1])
        if not 0 < level <= 100:
            raise ThresholdError(f"threshold {expression!r}: percentile must be above 0 and at most 100")
        return Threshold(text, scope, f"p{level:g}", op, number * _time_unit(expression, unit))
    if metric in TIME_METRICS:
        canonical = {"avg": "mean", "med": "median"}.get(metric, metric)
        return Threshold(text, scope, canonical, op, number * _time_unit(expression, unit))
    if metric == "fail_ratio":
        if unit not in ("", "%"):
            raise ThresholdError(f"threshold {expression!r}: fail_ratio is a fraction (0.01) or a percentage (1%)")
        limit = number / 100 if unit == "%" else number
        if limit > 1:
            raise ThresholdError(f"threshold {expression!r}: fail_ratio is at most 1 (or 100%)")
        return Threshold(text, scope, metric, op, limit)
    if metric == "rps":
        if unit not in ("", "/s"):
            raise ThresholdError(f"threshold {expression!r}: rps takes a plain number (requests per second)")
        return Threshold(text, scope, metric, op, number)
    if metric in COUNT_METRICS:
        if unit:
            raise ThresholdError(f"threshold {expression!r}: {metric} is a count, without a unit")
        return Threshold(text, scope, metric, op, number)
    known = "pNN, min, max, avg, median, fail_ratio, rps, requests, failures, " + ", ".join(INTEGRITY)
    raise ThresholdError(f"threshold {expression!r}: unknown metric {metric!r} (known: {known})")


def _time_unit(expression: str, unit: str) -> float:
    try:
        return TIME_UNITS[unit]
    except KeyError:
        raise ThresholdError(f"threshold {expression!r}: unknown time unit {unit!r} (us, ms, s, m)") from None


def parse_all(expressions) -> list[Threshold]:
    return [one if isinstance(one, Threshold) else parse(one) for one in expressions or ()]


# -- measuring -----------------------------------------------------------


class _Scope:
    """What one scope of a run measured: counts, the merged histogram, the time it covers."""

    def __init__(self):
        self.ok = 0
        self.failed = 0
        self.histogram = None
        self.series = 0


class _Measurements:
    """The files of a results folder, read once for every threshold."""

    def __init__(self, folder: Path, thresholds: list[Threshold]):
        self.folder = folder
        self.run = _read_json(folder / RUN_FILE)
        self.events = _read_event_kinds(folder / EVENTS_FILE)
        self.scopes: dict[str | None, _Scope] = {}
        self.span: tuple[float, float] | None = None
        self.has_metrics = (folder / METRICS_FILE).is_file()
        wanted = {t.scope for t in thresholds if t.metric not in INTEGRITY}
        if self.has_metrics and wanted:
            self._read_metrics(wanted)
        self.locust_rows = None if self.has_metrics else _read_locust_stats(folder / LOCUST_STATS_FILE)

    def _read_metrics(self, wanted: set[str | None]) -> None:
        from loadkit.metrics._histogram import add_into, decode, new_histogram

        phases = {s[len("phase."):] for s in wanted if s and s.startswith("phase.")}
        names = {s for s in wanted if s and not s.startswith("phase.")}
        first = last = None
        with open(self.folder / METRICS_FILE, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    interval = json.loads(line)
                    start, end = float(interval["start"]), float(interval["end"])
                except (ValueError, KeyError, TypeError):
                    raise ThresholdError(f"{self.folder / METRICS_FILE} line {number} is not an interval") from None
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
                for series in interval.get("series", ()):
                    for scope in self._scopes_of(series, wanted, names, phases):
                        measured = self.scopes.setdefault(scope, _Scope())
                        measured.ok += int(series.get("ok", 0))
                        measured.failed += int(series.get("failed", 0))
                        measured.series += 1
                        if series.get("histogram"):
                            if measured.histogram is None:
                                measured.histogram = new_histogram()
                            add_into(measured.histogram, decode(series["histogram"]))
        if first is not None:
            self.span = (first, last)

    @staticmethod
    def _scopes_of(series: dict, wanted, names, phases):
        """The scopes a series counts in: all requests, its name (or else its type), its phase."""
        kind, name, type_ = series.get("kind"), series.get("name"), series.get("type")
        if kind == "phase":
            if name in phases:
                yield f"phase.{name}"
            return
        if kind != "request":
            return
        if None in wanted:
            yield None
        if name in names:
            yield name
        elif type_ in names:
            yield type_

    def duration(self) -> float | None:
        started, stopped = self.run.get("started_at"), self.run.get("stopped_at")
        if isinstance(started, (int, float)) and isinstance(stopped, (int, float)) and stopped > started:
            return float(stopped - started)
        if self.span is not None and self.span[1] > self.span[0]:
            return self.span[1] - self.span[0]
        return None

    def measure(self, threshold: Threshold) -> tuple[float | None, str | None, str]:
        """(value, error, source) for one threshold."""
        if threshold.metric in INTEGRITY:
            if self.events is None:
                return None, f"no {EVENTS_FILE} in {self.folder}: integrity was not recorded", EVENTS_FILE
            return float(sum(self.events.get(kind, 0) for kind in INTEGRITY[threshold.metric])), None, EVENTS_FILE
        if not self.has_metrics:
            return self._measure_from_locust_csv(threshold)
        scope = self.scopes.get(threshold.scope)
        where = _describe_scope(threshold.scope)
        if scope is None or not scope.series:
            return None, f"never measured: no {where} in {METRICS_FILE}", METRICS_FILE
        total = scope.ok + scope.failed
        metric = threshold.metric
        if metric == "requests":
            return float(total), None, METRICS_FILE
        if metric == "failures":
            return float(scope.failed), None, METRICS_FILE
        if metric == "fail_ratio":
            if not total:
                return None, f"never measured: {where} has no requests", METRICS_FILE
            return scope.failed / total, None, METRICS_FILE
        if metric == "rps":
            duration = self.duration()
            if not duration:
                return None, "the run's duration is unknown (run.json has no started_at/stopped_at)", METRICS_FILE
            return total / duration, None, METRICS_FILE
        histogram = scope.histogram
        if histogram is None or not histogram.total_count:
            return None, f"never measured: {where} has no latency samples", METRICS_FILE
        from loadkit.metrics._histogram import percentiles_ms, summary_ms

        if threshold.percentile is not None or metric == "median":
            level = 50.0 if metric == "median" else threshold.percentile
            return percentiles_ms(histogram, [level])[level], None, METRICS_FILE
        return summary_ms(histogram)[metric], None, METRICS_FILE

    def _measure_from_locust_csv(self, threshold: Threshold) -> tuple[float | None, str | None, str]:
        source = LOCUST_STATS_FILE
        if self.locust_rows is None:
            return None, f"no {METRICS_FILE} or {LOCUST_STATS_FILE} in {self.folder}", source
        if threshold.scope is not None and threshold.scope.startswith("phase."):
            return None, f"never measured: phases are only in {METRICS_FILE}", source
        rows = self.locust_rows
        if threshold.scope is None:
            picked = [r for r in rows if r.get("Name") == "Aggregated" and not r.get("Type")]
        else:
            picked = [r for r in rows if r.get("Name") == threshold.scope and r.get("Type")] or \
                     [r for r in rows if r.get("Type") == threshold.scope]
        if len(picked) != 1:
            problem = "no" if not picked else "several"
            return None, f"never measured: {problem} {_describe_scope(threshold.scope)} in {source}", source
        row = picked[0]
        column = _locust_column(threshold)
        value = _float(row.get(column)) if column else None
        if value is None:
            return None, f"{source} has no value for {threshold.metric} (column {column or 'none'})", source
        if threshold.metric == "fail_ratio":
            requests = _float(row.get("Request Count"))
            if not requests:
                return None, f"never measured: {_describe_scope(threshold.scope)} has no requests", source
            value = value / requests
        return value, None, source


def _locust_column(threshold: Threshold) -> str | None:
    metric = threshold.metric
    fixed = {"requests": "Request Count", "failures": "Failure Count", "fail_ratio": "Failure Count",
             "rps": "Requests/s", "min": "Min Response Time", "max": "Max Response Time",
             "mean": "Average Response Time", "median": "Median Response Time"}
    if metric in fixed:
        return fixed[metric]
    level = threshold.percentile
    if level is None:
        return None
    return "100%" if level == 100 else f"{level:g}%"


def _describe_scope(scope: str | None) -> str:
    if scope is None:
        return "requests"
    if scope.startswith("phase."):
        return f"phase {scope[len('phase.'):]!r}"
    return f"request named {scope!r}"


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_event_kinds(path: Path) -> dict[str, int] | None:
    if not path.is_file():
        return None
    kinds: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                kind = json.loads(line)["kind"]
            except (ValueError, KeyError, TypeError):
                continue
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _read_locust_stats(path: Path) -> list[dict] | None:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except OSError:
        return None


def evaluate(results_folder, expressions) -> list[Verdict]:
    """Every expression (text or Threshold) against the files of `results_folder`.

    Raises ThresholdError for an expression that does not parse or a folder
    that does not exist; anything the run did not measure is a Verdict with
    an error.
    """
    folder = Path(results_folder)
    thresholds = parse_all(expressions)
    if not folder.is_dir():
        raise ThresholdError(f"no such results folder: {folder}")
    measurements = _Measurements(folder, thresholds)
    verdicts = []
    for threshold in thresholds:
        value, error, source = measurements.measure(threshold)
        passed = error is None and OPERATORS[threshold.op](value, threshold.limit)
        verdicts.append(Verdict(threshold.expression, value, threshold.limit, passed, threshold.unit, error, source))
    return verdicts


def all_passed(verdicts: list[Verdict]) -> bool:
    return all(v.passed for v in verdicts)


def exit_code(verdicts: list[Verdict]) -> int:
    return 0 if all_passed(verdicts) else EXIT_FAILED


# -- output --------------------------------------------------------------


def format_table(verdicts: list[Verdict]) -> str:
    """The verdicts as a small text table for the console."""
    rows = [("", "threshold", "measured", "limit")]
    for v in verdicts:
        rows.append((v.status.upper(), v.expression, v.measured_text, v.limit_text))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    for v in verdicts:
        if v.error:
            lines.append(f"{v.expression}: {v.error}")
    passed = sum(v.passed for v in verdicts)
    lines.append(f"thresholds: {passed} of {len(verdicts)} passed")
    return "\n".join(lines)


def write_json(verdicts: list[Verdict], path: Path) -> Path:
    data = {"passed": all_passed(verdicts),
            "verdicts": [{**asdict(v), "status": v.status} for v in verdicts]}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def write_junit(verdicts: list[Verdict], path: Path, suite: str = "loadkit thresholds") -> Path:
    failures = sum(v.status == "failed" for v in verdicts)
    errors = sum(v.status == "error" for v in verdicts)
    root = ElementTree.Element("testsuites", tests=str(len(verdicts)), failures=str(failures), errors=str(errors))
    suite_element = ElementTree.SubElement(root, "testsuite", name=suite, tests=str(len(verdicts)),
                                           failures=str(failures), errors=str(errors))
    for v in verdicts:
        case = ElementTree.SubElement(suite_element, "testcase", classname="loadkit.thresholds", name=v.expression)
        if v.status == "failed":
            message = f"measured {v.measured_text}, limit {v.limit_text}"
            ElementTree.SubElement(case, "failure", message=message, type="threshold").text = f"{v.expression}: {message}"
        elif v.status == "error":
            ElementTree.SubElement(case, "error", message=v.error, type="unmeasured").text = v.error
        else:
            ElementTree.SubElement(case, "system-out").text = f"measured {v.measured_text}"
    ElementTree.indent(root)
    path.write_bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
    return path


def write_verdicts(folder, verdicts: list[Verdict]) -> tuple[Path, Path]:
    """verdicts.json and junit.xml into a results folder."""
    folder = Path(folder)
    return write_json(verdicts, folder / VERDICTS_FILE), write_junit(verdicts, folder / JUNIT_FILE)


def read_verdicts(folder) -> list[Verdict]:
    """The verdicts a run wrote (empty when it had no thresholds)."""
    data = _read_json(Path(folder) / VERDICTS_FILE)
    fields = Verdict.__dataclass_fields__
    return [Verdict(**{k: v for k, v in one.items() if k in fields}) for one in data.get("verdicts", ())]


# -- loadkit check -------------------------------------------------------


def add_arguments(parser):
    parser.add_argument("results", metavar="RESULTS", help="a results folder (or one written by locust --csv)")
    parser.add_argument("--check", action="append", required=True, metavar="EXPR",
                        help=f"a threshold, repeatable: {EXAMPLES}")
    parser.add_argument("--json", metavar="FILE", help="also write the verdicts as JSON")
    parser.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML")


def run(args) -> int:
    from loadkit.cli import CommandError

    try:
        verdicts = evaluate(args.results, args.check)
    except ThresholdError as error:
        raise CommandError(str(error)) from None
    print(format_table(verdicts))
    try:
        if args.json:
            write_json(verdicts, Path(args.json))
        if args.junit:
            write_junit(verdicts, Path(args.junit))
    except OSError as error:
        raise CommandError(f"cannot write {error.filename}: {error.strerror}") from None
    sys.stdout.flush()
    return exit_code(verdicts)
