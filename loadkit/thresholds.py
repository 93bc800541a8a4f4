"""Thresholds: k6-style pass/fail checks on a run's results (``loadkit check`` is in `loadkit.check`).

An expression is ``[SCOPE:]METRIC OP VALUE[UNIT]`` or an integrity check:

    p95<250ms  p99.9<1s  p(99)<=20  max<2s  min>=0.1ms  avg<50  median<30
    fail_ratio<0.01  fail_ratio<1%  rps>500  requests>=1000  failures==0
    send:p95<250ms         requests named "send" (any type; or a type: SMTP:p95<...)
    phase.envelope:p99<20ms
                           a phase of mail requests, named as in loadkit.phases
                           (with PIPELINING: envelope; without: mail, rcpt, data)
    failed.p95<1s          the failed requests' own times (p95 and the rest are of accepted ones)
    no_worker_lost  no_worker_missing  no_cpu_high  generator_ok  run_complete
    open model (--rate): p99 is the corrected latency (from the intended time);
    service.p99<50ms  lag.p99<10ms  (= phase.service:p99, phase.lag:p99)
    dropped==0        rate_reached (sent at least 99% of the offered arrivals)
    end to end (e2e.json): e2e.p99<500ms  e2e.max<2s  e2e.lost==0  e2e.duplicated==0
                           e2e.delivered>=1000  e2e.accepted>=1000
    server side (probes.jsonl, Postfix probe): queue_growth<=0 (msgs/s, the
                           least-squares slope of the queue's total)  queue_max<100

Times default to ms (us, ms, s, m accepted). Latencies come from the run's
HdrHistograms (metrics.jsonl, 3 significant digits): accepted requests only,
failed ones under ``failed.``; without them, from Locust's own CSV (``--csv
PREFIX``) or JSON (``--json-file``), whose percentiles Locust rounds and
takes over accepted and failed requests alike. Integrity checks read
events.jsonl. A threshold on something the run never measured is an error,
never a silent pass:
errors fail a check like failures do. Every file is read by
`loadkit.results`, with the report's policy: damaged lines are skipped and
said in the notes. Every threshold is of the whole run (none looks at one
second), so a run longer than ten hours is measured from metrics-minute.jsonl
when that covers it, as the report reads it: the same counts and histograms,
sixty times fewer to decode; the verdicts' source names it.

A loadkit run that never finished (no run.json, no run_stopped event: killed,
or its disk full) gets a failed ``run_complete`` verdict whatever was asked;
one whose load generator was short of CPU (Locust's CPU warning, or the host
probe at saturation) gets a failed ``generator_ok`` verdict the same way.

`evaluate(results, expressions) -> list[Verdict]` is what reports use.
Exit codes of ``loadkit check`` (and of a ``locust --check`` run): 0 every
threshold passed, 3 one failed or could not be measured, 2 bad input.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

from loadkit.errors import LoadkitError
from loadkit.results import (
    E2E_FILE,
    EVENTS_FILE,
    METRICS_FILE,
    MINUTES_FILE,
    PROBES_FILE,
    RUN_FILE,
    RUN_INCOMPLETE,
    STATS_SUFFIX,
    Notes,
    ResultsError,
    SpanDecoder,
    csv_path,
    find_prefix,
    first_and_last_intervals,
    histogram_from_counts,
    incomplete_run,
    locate,
    measure_minutes,
    read_e2e,
    read_events,
    read_intervals,
    read_locust_csv,
    read_locust_json,
    read_probes,
    read_run_json,
    read_verdicts_json,
    results_folder_of,
    verdict_paths,
    write_verdicts_json,
)
from loadkit.results import (
    write_junit as write_junit_xml,
)
from loadkit.results._events import CPU_HIGH, GENERATOR_CPU_HIGH, HOST_CPU_SATURATED
from loadkit.server_side import queue_growth, queue_max

EXIT_FAILED = 3

TIME_UNITS = {"": 1.0, "ms": 1.0, "us": 0.001, "µs": 0.001, "s": 1000.0, "m": 60_000.0}
TIME_METRICS = {"min", "max", "avg", "mean", "median", "med"}
COUNT_METRICS = {"requests", "failures", "dropped"}
# An integrity check passes when the run has no event of its kinds.
INTEGRITY = {"no_worker_lost": ("worker_lost", "final_report_missing"), "no_worker_missing": ("worker_missing",),
             "no_cpu_high": (CPU_HIGH, GENERATOR_CPU_HIGH),
             "generator_ok": (CPU_HIGH, GENERATOR_CPU_HIGH, HOST_CPU_SATURATED),
             "run_complete": (RUN_INCOMPLETE,),
             "rate_reached": ("rate_not_reached",)}
RUN_COMPLETE = "run_complete"
GENERATOR_OK = "generator_ok"
# Checked whatever was asked: a run they fail cannot be trusted for any other threshold.
ALWAYS_CHECKED = (RUN_COMPLETE, GENERATOR_OK)
OPERATORS = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b,
}
EXAMPLES = "e.g. p95<250ms, send:fail_ratio<0.01, phase.envelope:p99<20ms, no_worker_lost, e2e.p99<500ms"
E2E_PREFIX = "e2e."
E2E_COUNTS = {"lost", "duplicated", "delivered", "accepted", "unexpected"}
SERVER_SIDE = {"queue_growth": queue_growth, "queue_max": queue_max}
SERVER_UNITS = {"queue_growth": "msgs/s", "queue_max": "msgs"}


class ThresholdError(LoadkitError):
    """A threshold expression that cannot be understood; the message is one line."""


@dataclass(frozen=True)
class Threshold:
    """A parsed expression; `limit` is in the metric's unit (ms, ratio, req/s, count)."""

    expression: str
    scope: str | None
    metric: str  # "p95.0", "max", "mean", "fail_ratio", "rps", "requests", "failures", "no_worker_lost"
    op: str
    limit: float
    failed: bool = False  # a time of the failed requests (failed.p95)

    @property
    def percentile(self) -> float | None:
        metric = self.metric.removeprefix(E2E_PREFIX)
        return float(metric[1:]) if metric.startswith("p") and metric[1:2].isdigit() else None

    @property
    def end_to_end(self) -> bool:
        return self.metric.startswith(E2E_PREFIX)

    @property
    def server_side(self) -> bool:
        return self.metric in SERVER_SIDE

    @property
    def unit(self) -> str:
        if self.percentile is not None or self.metric.removeprefix(E2E_PREFIX) in TIME_METRICS:
            return "ms"
        return {"rps": "req/s", **SERVER_UNITS}.get(self.metric, "")


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
    detail: str = ""  # what an integrity check found

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
#
# One grammar for --check and for capacity's limits (`loadkit.capacity`):
# ``NAME [OP VALUE[UNIT]]`` is read by `read_comparison`; a vocabulary then
# says what NAME may be, and reads VALUE with the Comparison's readers
# (time, percentile, ratio, count, per second), whose errors are one line.

_NUMBER = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_COMPARISON = re.compile(rf"^(?P<name>.*?)\s*(?:(?P<op><=|>=|==|<|>)\s*(?P<value>{_NUMBER})\s*(?P<unit>[A-Za-zµ%/]*))?\s*$")
PERCENTILE_NAME = r"p\(?[0-9]+(?:\.[0-9]+)?\)?"  # p99, p99.9, p(99)
_PERCENTILE = re.compile(r"^p\(?([0-9]+(?:\.[0-9]+)?)\)?$")
_NAME = re.compile(rf"^(?:(?P<scope>.*):)?\s*(?P<failed>failed\.)?(?P<metric>[A-Za-z_]+|{PERCENTILE_NAME})$")
_MEASURE_NAME = re.compile(rf"^(?:e2e\.(?:[A-Za-z_]+|{PERCENTILE_NAME})|queue_growth|queue_max)$")
_OPEN_ALIAS = re.compile(r"^(service|lag)\.(?=p)")  # service.p99 -> phase.service:p99
_TIME_ALIASES = {"avg": "mean", "med": "median"}


@dataclass(frozen=True)
class Comparison:
    """An expression read as ``NAME [OP VALUE[UNIT]]``, before a vocabulary says what NAME means.

    The readers turn VALUE and UNIT into a limit, or raise `error` with one
    line that names the expression (``threshold 'p95<3x': unknown time unit 'x'``).
    """

    expression: str  # as given, for messages
    name: str
    op: str | None
    value: float | None
    unit: str
    noun: str = "threshold"
    error: type[LoadkitError] = ThresholdError

    def fail(self, reason: str) -> NoReturn:
        raise self.error(f"{self.noun} {self.expression!r}: {reason}")

    def unreadable(self, hint: str) -> NoReturn:
        raise self.error(f"cannot read {self.noun} {self.expression!r}: {hint}")

    def require_op(self, hint: str) -> str:
        if self.op is None:
            self.fail(f"no comparison; {hint}")
        return self.op

    def percentile(self, metric: str) -> float | None:
        """The level of a pNN metric (99.9 for p99.9 or p(99.9)); None for any other metric."""
        match = _PERCENTILE.match(metric)
        if match is None:
            return None
        level = float(match[1])
        if not 0 < level <= 100:
            self.fail("percentile must be above 0 and at most 100")
        return level

    def time_ms(self) -> float:
        """A time in ms: us, ms (the default), s or m."""
        try:
            factor = TIME_UNITS[self.unit]
        except KeyError:
            self.fail(f"unknown time unit {self.unit!r} (us, ms, s, m)")
        return self._not_negative("a time") * factor

    def ratio(self, metric: str) -> float:
        """A fraction: 0.01 or 1%, at most 1."""
        if self.unit not in ("", "%"):
            self.fail(f"{metric} is a fraction (0.01) or a percentage (1%)")
        value = self._not_negative(metric)
        limit = value / 100 if self.unit == "%" else value
        if limit > 1:
            self.fail(f"{metric} is at most 1 (or 100%)")
        return limit

    def count(self, reason: str) -> float:
        """A plain number of things; `reason` says so when a unit is given."""
        if self.unit:
            self.fail(reason)
        return self._not_negative("a count")

    def per_second(self, reason: str) -> float:
        """A plain number, or one written per second (5/s); it may be negative (a slope)."""
        if self.unit not in ("", "/s"):
            self.fail(reason)
        return self.value

    def _not_negative(self, what: str) -> float:
        if self.value < 0:
            self.fail(f"{what} is never negative")
        return self.value


def read_comparison(expression, text: str, noun: str = "threshold", error: type[LoadkitError] = ThresholdError) -> Comparison:
    """`text` (the expression, its spaces normalised) as a Comparison; its NAME is still to be read."""
    match = _COMPARISON.match(text)
    value = float(match["value"]) if match["value"] is not None else None
    return Comparison(str(expression), match["name"], match["op"], value, match["unit"] or "", noun, error)


def is_measure(name: str) -> bool:
    """Whether `name` is a whole-run measure of end-to-end delivery (e2e.*) or the server's queue (queue_*)."""
    return _MEASURE_NAME.match(name) is not None


def parse(expression: str) -> Threshold:
    """A Threshold, or ThresholdError with one line saying what is wrong."""
    text = " ".join(str(expression).split())
    comparison = read_comparison(expression, text)
    if is_measure(comparison.name):
        return parse_measure(comparison, text)
    name = _NAME.match(_OPEN_ALIAS.sub(r"phase.\1:", comparison.name))
    if not text or name is None:
        comparison.unreadable(f"expected [NAME:]METRIC<VALUE, {EXAMPLES}")
    scope = name["scope"].strip() if name["scope"] is not None else None
    metric = name["metric"].lower()
    if scope == "":
        comparison.fail("empty name before ':'")
    failed = name["failed"] is not None
    level = comparison.percentile(metric)
    if failed and level is None and metric not in TIME_METRICS:
        comparison.fail(f"failed. takes a time (failed.p95, failed.max, ...), not {metric}")
    if metric in INTEGRITY:
        if comparison.op is not None:
            comparison.fail(f"{metric} is a check of its own, without a comparison")
        if scope is not None:
            comparison.fail(f"{metric} applies to the whole run, not to {scope!r}")
        return Threshold(text, None, metric, "==", 0.0)
    op = comparison.require_op(EXAMPLES)
    if level is not None or metric in TIME_METRICS:
        return Threshold(text, scope, _time_metric(metric, level), op, comparison.time_ms(), failed)
    if metric == "fail_ratio":
        return Threshold(text, scope, metric, op, comparison.ratio(metric))
    if metric == "rps":
        return Threshold(text, scope, metric, op, comparison.per_second("rps takes a plain number (requests per second)"))
    if metric in COUNT_METRICS:
        return Threshold(text, scope, metric, op, comparison.count(f"{metric} is a count, without a unit"))
    known = "pNN, min, max, avg, median, fail_ratio, rps, requests, failures, e2e.*, queue_growth, queue_max, " + \
        ", ".join(INTEGRITY)
    comparison.fail(f"unknown metric {metric!r} (known: {known})")


def parse_measure(comparison: Comparison, text: str) -> Threshold:
    """An end-to-end (e2e.*) or server-side (queue_*) measure: whole-run, never scoped (capacity's limits read them too)."""
    metric = comparison.name.lower()
    op = comparison.require_op(f"e.g. {metric}<=0")
    if metric == "queue_growth":
        return Threshold(text, None, metric, op, comparison.per_second("queue_growth is in messages per second (a plain number)"))
    if metric == "queue_max":
        return Threshold(text, None, metric, op, comparison.count("queue_max is a count of messages, without a unit"))
    name = metric[len(E2E_PREFIX):]
    if name in E2E_COUNTS:
        return Threshold(text, None, metric, op, comparison.count(f"{metric} is a count, without a unit"))
    level = comparison.percentile(name)
    if level is not None or name in TIME_METRICS:
        return Threshold(text, None, E2E_PREFIX + _time_metric(name, level), op, comparison.time_ms())
    known = "e2e.pNN, e2e.max, e2e.min, e2e.avg, e2e.median, " + ", ".join(f"e2e.{c}" for c in sorted(E2E_COUNTS))
    comparison.fail(f"unknown end-to-end measure {metric!r} (known: {known})")


def _time_metric(metric: str, level: float | None) -> str:
    """The canonical name of a time metric: p99.9 (from p(99.9)), mean (from avg), median (from med)."""
    return f"p{level:g}" if level is not None else _TIME_ALIASES.get(metric, metric)


def parse_all(expressions) -> list[Threshold]:
    return [one if isinstance(one, Threshold) else parse(one) for one in expressions or ()]


# -- measuring -----------------------------------------------------------


class _Scope:
    """What one scope of a run measured: counts, the merged histogram, the time it covers."""

    def __init__(self):
        self.ok = 0
        self.failed = 0
        self.histogram = None  # accepted requests (all of them in files from before the split)
        self.failed_histogram = None
        self.series = 0

    def add_histogram(self, histogram, failed: bool = False) -> None:
        from loadkit.hdr import merge_into, new_histogram

        attribute = "failed_histogram" if failed else "histogram"
        if getattr(self, attribute) is None:
            setattr(self, attribute, new_histogram())
        merge_into(getattr(self, attribute), histogram)


class _Measurements:
    """A run's files, read once for every threshold through `loadkit.results`."""

    def __init__(self, results, thresholds: list[Threshold]):
        self.notes = Notes()
        try:
            self.kind, self.path = locate(results)
        except ResultsError as error:
            raise ThresholdError(str(error)) from None
        self.folder = results_folder_of(self.kind, self.path)
        self.run = read_run_json(self.folder, self.notes) or {}
        self.event_list = read_events(self.folder, self.notes)
        self.events = None if self.event_list is None else Counter(event["kind"] for event in self.event_list)
        self.incomplete = incomplete_run(self.folder, self.event_list, self.notes)
        if self.incomplete is not None and self.events is not None:
            self.events[RUN_INCOMPLETE] += 1
        self.scopes: dict[str | None, _Scope] = {}
        self.span: tuple[float, float] | None = None
        self.source = METRICS_FILE
        self.locust_rows = None
        self.open_counts: dict[str, int] = {}  # offered/sent/dropped of an open-model run
        self._e2e: dict | None = None
        self._probes: list[dict] | None = None
        if any(t.end_to_end for t in thresholds):
            self._e2e = read_e2e(self.folder, self.notes)
        if any(t.server_side for t in thresholds):
            self._probes = read_probes(self.folder, self.notes)
        wanted = {t.scope for t in thresholds if t.metric not in INTEGRITY and not t.end_to_end and not t.server_side}
        if not wanted:
            return
        if self.kind == "metrics":
            self._read_metrics(wanted)
            if self.span is None:  # killed before its first interval: Locust's CSV may have more
                self._fall_back_to_locust_csv()
        elif self.kind == "csv":
            self._read_locust_csv(self.path)
        else:
            self._read_locust_json(wanted)

    def _read_metrics(self, wanted: set[str | None]) -> None:
        """metrics.jsonl, or for a long run its minutes when they cover it and read without damage
        (the same totals and histograms: `loadkit.results._minutes`), as `loadkit report` does."""
        from loadkit.hdr import decode_span

        decode = SpanDecoder().decode
        try:
            first, last = first_and_last_intervals(self.folder, decode_span)
        except OSError:
            first = last = None  # the full read says why
        measured = measure_minutes(self.folder, first, last, lambda records: self._measure_intervals(records, wanted),
                                   decode)
        if measured is not None:
            self.scopes, self.open_counts, self.span = measured
            self.source = MINUTES_FILE
            return
        self.scopes, self.open_counts, self.span = self._measure_intervals(
            read_intervals(self.folder, self.notes, decode=decode), wanted)

    def _measure_intervals(self, intervals, wanted: set[str | None]):
        """(scopes, open-model counts, (first start, last end) or None) of (line number, interval)s."""
        from loadkit.hdr import add_span, empty_counts

        scopes: dict[str | None, _Scope] = {}
        open_counts: dict[str, int] = {}
        spans = {}  # (scope, failed) -> counts: spans add as arrays, one histogram per scope at the end
        phases = {s[len("phase."):] for s in wanted if s and s.startswith("phase.")}
        names = {s for s in wanted if s and not s.startswith("phase.")}
        first = last = None
        for _number, interval in intervals:
            start = float(interval["start"])
            end = float(interval.get("end", start + 1))
            first = start if first is None else min(first, start)
            last = end if last is None else max(last, end)
            for series in interval.get("series", ()):
                if series.get("kind") == "open":
                    name = series.get("name", "")
                    open_counts[name] = open_counts.get(name, 0) + series.get("ok", 0)
                for scope in self._scopes_of(series, wanted, names, phases):
                    measured = scopes.setdefault(scope, _Scope())
                    measured.ok += series.get("ok", 0)
                    measured.failed += series.get("failed", 0)
                    measured.series += 1
                    for key, failed in (("histogram", False), ("failed_histogram", True)):
                        if series.get(key):
                            counts = spans.get((scope, failed))
                            if counts is None:
                                counts = spans[(scope, failed)] = empty_counts()
                            add_span(counts, series[key])
        for (scope, failed), counts in spans.items():
            scopes[scope].add_histogram(histogram_from_counts(counts), failed)
        return scopes, open_counts, None if first is None else (first, last)

    def _fall_back_to_locust_csv(self) -> None:
        try:
            prefix = find_prefix(self.folder)
        except ResultsError:
            return
        self._read_locust_csv(prefix)

    def _read_locust_csv(self, prefix: Path) -> None:
        self.source = prefix.name + STATS_SUFFIX
        try:
            table = read_locust_csv(csv_path(prefix, STATS_SUFFIX), self.notes)
        except ResultsError as error:
            self.notes.add(str(error))
            table = None
        if table is not None:
            header, rows = table
            self.locust_rows = [dict(zip(header, row)) for row in rows]

    def _read_locust_json(self, wanted: set[str | None]) -> None:
        from loadkit.hdr import new_histogram

        self.source = self.path.name
        try:
            entries = read_locust_json(self.path)
        except ResultsError as error:
            raise ThresholdError(str(error)) from None
        names = {s for s in wanted if s and not s.startswith("phase.")}
        starts, ends = [], []
        for entry in entries:
            histogram = new_histogram()
            times = entry.get("response_times") if isinstance(entry.get("response_times"), dict) else {}
            for ms, count in times.items():
                try:
                    histogram.record_value(max(round(float(ms) * 1000.0), 1), int(count))
                except (TypeError, ValueError):
                    continue
            series = {"kind": "request", "type": str(entry.get("method") or ""), "name": str(entry.get("name"))}
            requests, failures = _count(entry.get("num_requests")), _count(entry.get("num_failures"))
            for scope in self._scopes_of(series, wanted, names, set()):
                measured = self.scopes.setdefault(scope, _Scope())
                measured.ok += requests - failures
                measured.failed += failures
                measured.series += 1
                measured.add_histogram(histogram)
            if _float(entry.get("start_time")) and _float(entry.get("last_request_timestamp")):
                starts.append(_float(entry["start_time"]))
                ends.append(_float(entry["last_request_timestamp"]))
        if starts:
            self.span = (min(starts), max(ends))

    @staticmethod
    def _scopes_of(series: dict, wanted, names, phases):
        """The scopes a series counts in: all requests, its name (or else its type), its phase."""
        kind, name, type_ = series.get("kind", "request"), series.get("name"), series.get("type")
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

    def integrity_events(self, check: str) -> list[dict]:
        """The events that fail an integrity check (the derived run_incomplete one included)."""
        kinds = INTEGRITY[check]
        found = [event for event in self.event_list or () if event.get("kind") in kinds]
        if RUN_INCOMPLETE in kinds and self.incomplete is not None:
            found.append(self.incomplete)
        return found

    def integrity_detail(self, threshold: Threshold) -> str:
        if threshold.metric not in INTEGRITY:
            return ""
        events = self.integrity_events(threshold.metric)
        if threshold.metric == RUN_COMPLETE:
            return events[-1].get("detail", "") if events else ""
        return "; ".join(_event_text(event) for event in events[:3]) + (f"; {len(events) - 3} more" if len(events) > 3 else "")

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
        if threshold.end_to_end:
            return self._measure_end_to_end(threshold)
        if threshold.server_side:
            return self._measure_server_side(threshold)
        if threshold.failed and (self.locust_rows is not None or self.kind != "metrics"):
            return None, f"never measured: failed requests' own times are only in {METRICS_FILE}", self.source
        if threshold.metric == "dropped":
            if not self.open_counts:
                return None, "never measured: not an open-model run (--rate)", self.source
            return float(self.open_counts.get("dropped", 0)), None, self.source
        if self.locust_rows is not None:
            return self._measure_from_locust_csv(threshold)
        source = self.source
        if self.kind == "csv":
            return None, f"no readable {source} for {self.path}", source
        scope = self.scopes.get(threshold.scope)
        where = _describe_scope(threshold.scope)
        if self.kind == "json" and threshold.scope is not None and threshold.scope.startswith("phase."):
            return None, f"never measured: phases are only in {METRICS_FILE}", source
        if scope is None or not scope.series:
            return None, f"never measured: no {where} in {source}", source
        total = scope.ok + scope.failed
        metric = threshold.metric
        if metric == "requests":
            return float(total), None, source
        if metric == "failures":
            return float(scope.failed), None, source
        if metric == "fail_ratio":
            if not total:
                return None, f"never measured: {where} has no requests", source
            return scope.failed / total, None, source
        if metric == "rps":
            duration = self.duration()
            if not duration:
                return None, f"the run's duration is unknown ({RUN_FILE} has no started_at/stopped_at)", source
            return total / duration, None, source
        histogram = scope.failed_histogram if threshold.failed else scope.histogram
        if histogram is None or not histogram.total_count:
            what = "failed requests with a time" if threshold.failed else "latency samples"
            return None, f"never measured: {where} has no {what}", source
        return _time_of(histogram, threshold, metric), None, source

    def _measure_end_to_end(self, threshold: Threshold) -> tuple[float | None, str | None, str]:
        e2e = self._e2e
        if e2e is None:
            return None, f"never measured: no readable {E2E_FILE} in {self.folder} (an end-to-end run)", E2E_FILE
        name = threshold.metric[len(E2E_PREFIX):]
        if name in E2E_COUNTS:
            value = e2e.get(name)
            if not isinstance(value, (int, float)):
                return None, f"never measured: {E2E_FILE} has no {name} count", E2E_FILE
            return float(value), None, E2E_FILE
        from loadkit.hdr import HistogramError, decode

        try:
            histogram = decode(e2e["latency_histogram"]) if e2e.get("latency_histogram") else None
        except HistogramError:  # a damaged histogram is not a measure: said, never a traceback
            self.notes.add(f"{E2E_FILE}: latency histogram does not decode")
            histogram = None
        if histogram is None or not histogram.total_count:
            return None, f"never measured: {E2E_FILE} has no delivery latency (nothing delivered)", E2E_FILE
        return _time_of(histogram, threshold, name), None, E2E_FILE

    def _measure_server_side(self, threshold: Threshold) -> tuple[float | None, str | None, str]:
        if self._probes is None:
            return None, f"never measured: no {PROBES_FILE} in {self.folder} (--probe postfix=DIR)", PROBES_FILE
        value = SERVER_SIDE[threshold.metric](self._probes)
        if value is None:
            return None, f"never measured: too few Postfix queue samples in {PROBES_FILE} (--probe postfix=DIR)", \
                PROBES_FILE
        return float(value), None, PROBES_FILE

    def _measure_from_locust_csv(self, threshold: Threshold) -> tuple[float | None, str | None, str]:
        source = self.source
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


def _time_of(histogram, threshold: Threshold, name: str) -> float:
    """A time of a histogram in ms: its threshold's percentile, or `name` (median, min, max, mean)."""
    from loadkit.hdr import percentiles_ms, summary_ms

    if threshold.percentile is not None or name == "median":
        level = 50.0 if name == "median" else threshold.percentile
        return percentiles_ms(histogram, [level])[level]
    return summary_ms(histogram)[name]


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
    return f"{level:g}%"  # 95%, 99.9%, 100%


def _event_text(event: dict) -> str:
    worker = f" on {event['worker']}" if event.get("worker") else ""
    return f"{event.get('kind')}{worker}: {event.get('detail', '')}".rstrip(": ")


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


def _count(value) -> int:
    number = _float(value)
    return int(number) if number is not None and number > 0 else 0


def evaluate_with_notes(results, expressions) -> tuple[list[Verdict], list[str]]:
    """Every expression (text or Threshold) against a run's files, and the readers' notes.

    `results` is a results folder, a Locust ``--csv`` prefix or a ``--json-file``
    output. Raises ThresholdError for an expression that does not parse or
    results that are not there; anything the run did not measure is a
    Verdict with an error. A loadkit run that never finished adds a failed
    ``run_complete`` verdict.
    """
    thresholds = parse_all(expressions)
    measurements = _Measurements(results, thresholds)
    for check in ALWAYS_CHECKED:
        if not any(t.metric == check for t in thresholds) and measurements.integrity_events(check):
            thresholds.append(parse(check))
    verdicts = []
    for threshold in thresholds:
        value, error, source = measurements.measure(threshold)
        passed = error is None and OPERATORS[threshold.op](value, threshold.limit)
        detail = measurements.integrity_detail(threshold) if not passed and not error else ""
        verdicts.append(Verdict(threshold.expression, value, threshold.limit, passed, threshold.unit, error, source, detail))
    return verdicts, measurements.notes.lines()


def evaluate(results, expressions) -> list[Verdict]:
    """The verdicts of `evaluate_with_notes`."""
    return evaluate_with_notes(results, expressions)[0]


def all_passed(verdicts: list[Verdict]) -> bool:
    return all(v.passed for v in verdicts)


def exit_code(verdicts: list[Verdict]) -> int:
    return 0 if all_passed(verdicts) else EXIT_FAILED


# -- output --------------------------------------------------------------


def format_table(verdicts: list[Verdict], notes: list[str] = ()) -> str:
    """The verdicts as a small text table for the console, then what the readers skipped."""
    rows = [("", "threshold", "measured", "limit")]
    for v in verdicts:
        rows.append((v.status.upper(), v.expression, v.measured_text, v.limit_text))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    for v in verdicts:
        if v.error or v.detail:
            lines.append(f"{v.expression}: {v.error or v.detail}")
    lines.extend(f"note: {note}" for note in notes)
    passed = sum(v.passed for v in verdicts)
    lines.append(f"thresholds: {passed} of {len(verdicts)} passed")
    return "\n".join(lines)


def as_dicts(verdicts: list[Verdict]) -> list[dict]:
    return [{**asdict(v), "status": v.status} for v in verdicts]


def write_json(verdicts: list[Verdict], path: Path, notes: list[str] = ()) -> Path:
    return write_verdicts_json(path, as_dicts(verdicts), notes)


def write_junit(verdicts: list[Verdict], path: Path, suite: str = "loadkit thresholds") -> Path:
    cases = []
    for v in verdicts:
        if v.status == "failed":
            message = f"measured {v.measured_text}, limit {v.limit_text}" + (f": {v.detail}" if v.detail else "")
        elif v.status == "error":
            message = v.error
        else:
            message = f"measured {v.measured_text}"
        cases.append({"name": v.expression, "status": v.status, "message": message})
    return write_junit_xml(path, cases, suite)


def write_verdicts(folder, verdicts: list[Verdict], notes: list[str] = ()) -> tuple[Path, Path]:
    """verdicts.json and junit.xml into a results folder."""
    json_path, junit_path = verdict_paths(folder)
    return write_json(verdicts, json_path, notes), write_junit(verdicts, junit_path)


def read_verdicts(folder) -> list[Verdict]:
    """The verdicts a run wrote (empty when it had no thresholds)."""
    fields = Verdict.__dataclass_fields__
    return [Verdict(**{k: v for k, v in one.items() if k in fields}) for one in read_verdicts_json(folder, Notes())]
