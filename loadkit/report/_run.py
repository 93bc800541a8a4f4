"""One run, whatever it was written as: what the page and the comparison read.

Three sources, best first:

1. a loadkit results folder with ``metrics.jsonl`` (HdrHistograms per
   interval: exact percentiles, phases, reply codes);
2. Locust's CSV files (``--csv PREFIX``, with ``--csv-full-history`` when
   present): Locust's rounded percentiles;
3. Locust's JSON stats (``--json-file NAME``): rounded percentiles, exact
   throughput per second.

Beside them, a folder may hold ``run.json``, ``events.jsonl``,
``errors.csv``, ``verdicts.json`` and Locust's failures and exceptions; each
is optional and a broken one becomes a note on the page, not a failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from loadkit import results as files
from loadkit.hdr import SUMMARY_PERCENTILES, Distribution, percentile_key
from loadkit.phases import is_phase_type, phase_position
from loadkit.report._locust_csv import (
    AGGREGATED,
    ReportError,
    aggregated_timeline,
    find_prefix,
    history_is_per_request,
    load_exceptions,
    load_failures,
    load_history,
    load_stats,
)
from loadkit.report._locust_json import LocustJsonError, json_timeline, read_locust_json
from loadkit.report._metrics import read_metrics, reply_code
from loadkit.results import (
    ERRORS_COLUMNS,
    ERRORS_FILE,
    FAILURES_SUFFIX,
    METRICS_FILE,
    STATS_SUFFIX,
    Notes,
    ResultsError,
)

ERROR_COLUMNS = list(ERRORS_COLUMNS)
LATENCY_KEYS = ("min", *(percentile_key(p) for p in SUMMARY_PERCENTILES), "max")
TOTAL_LABEL = "All requests"
# Integrity events that mean the numbers may be wrong; the rest are shown plainly.
NORMAL_EVENTS = frozenset({"run_started", "run_stopped", "worker_joined", "worker_recovered", "worker_quit", "sink_changed"})
MAIL_TYPES = frozenset({"SMTP", "LMTP"})


@dataclass
class Row:
    """One line of a summary table: a request name, a phase, or the total. Times in ms.

    From metrics.jsonl, `latency` is of accepted requests and `failed_latency`
    of failed ones (OK/KO); Locust's own files mix both into `latency` and
    leave `failed_latency` None.
    """

    type: str
    name: str
    count: float | None  # accepted and failed
    failures: float | None
    rate: float | None  # accepted and failed, per second over the run
    latency: dict[str, float | None]
    kind: str = "request"  # request | phase | total | failed
    failed_latency: dict[str, float | None] | None = None

    @property
    def label(self) -> str:
        if self.kind == "failed":
            return f"{TOTAL_LABEL if self.name == TOTAL_LABEL else f'{self.type} {self.name}'.strip()} (failed)"
        return TOTAL_LABEL if self.kind == "total" else f"{self.type} {self.name}".strip()

    @property
    def failure_ratio(self) -> float | None:
        if not _is_number(self.count) or not _is_number(self.failures) or self.count <= 0:
            return None
        return self.failures / self.count

    @property
    def accepted(self) -> float | None:
        if not _is_number(self.count):
            return None
        return self.count - (self.failures if _is_number(self.failures) else 0)

    @property
    def accepted_rate(self) -> float | None:
        ratio = self.failure_ratio
        return None if ratio is None or not _is_number(self.rate) else self.rate * (1.0 - ratio)

    @property
    def failed_rate(self) -> float | None:
        ratio = self.failure_ratio
        return None if ratio is None or not _is_number(self.rate) else self.rate * ratio

    def failed_row(self) -> Row | None:
        """The failed requests of this row as a row of their own (count, rate, their times)."""
        if self.failed_latency is None or not self.failures:
            return None
        return Row(self.type, self.name, self.failures, self.failures, self.failed_rate, self.failed_latency, "failed")


@dataclass
class Run:
    """Everything a report shows of one run."""

    path: Path  # the folder (or the file, for a Locust JSON file)
    source: str  # "metrics.jsonl", "locust_stats.csv", "stats.json", ...
    metadata: dict = field(default_factory=dict)
    requests: list[Row] = field(default_factory=list)
    total: Row | None = None
    phases: list[Row] = field(default_factory=list)
    duration: float | None = None  # seconds
    bucket_seconds: float = 1.0
    # elapsed (s), ok_per_s, failed_per_s, users
    timeline: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["elapsed", "ok_per_s", "failed_per_s", "users"]))
    percentiles_over_time: dict[str, pd.DataFrame] = field(default_factory=dict)  # label -> elapsed, p50, p95, p99
    percentiles_note: str = ""
    knee: pd.DataFrame | None = None  # elapsed, rate, p95, p99 per time bucket
    distributions: dict[str, Distribution] = field(default_factory=dict)  # label -> merged latencies
    percentile_points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # label -> (percentile, ms)
    reply_codes: pd.DataFrame | None = None  # elapsed + failures/s per code
    errors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ERROR_COLUMNS))
    errors_source: str = ""
    exceptions: pd.DataFrame = field(default_factory=pd.DataFrame)
    events: list[dict] = field(default_factory=list)
    origin: float | None = None  # epoch seconds at elapsed 0
    verdicts: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    server_side: object = None  # a `_server_side.ServerSide`: e2e.json, probes.jsonl, postfix_log.json
    open_model: object = None  # a `_open_model.OpenModelFacts` of a run with --rate, from metrics.jsonl

    @property
    def folder(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent

    @property
    def label(self) -> str:
        return self.folder.name if self.path.is_dir() else self.path.name

    @property
    def noun(self) -> str:
        """ "msgs" for a mail run, "req" for anything else Locust measured."""
        types = {row.type for row in self.requests}
        return "msgs" if types and types <= MAIL_TYPES else "req"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- the files beside the measurements ------------------------------------------


def read_events(folder: Path, notes: Notes) -> list[dict]:
    """events.jsonl, and the run_incomplete event the reader derives (see `loadkit.results`)."""
    events = files.read_events(folder, notes)
    incomplete = files.incomplete_run(folder, events, notes)
    return (events or []) + ([incomplete] if incomplete is not None else [])


def read_errors_csv(folder: Path, notes: Notes) -> pd.DataFrame | None:
    rows = files.read_errors(folder, notes)
    if rows is None:
        return None
    frame = pd.DataFrame(rows, columns=ERROR_COLUMNS)
    frame["count"] = pd.to_numeric(frame["count"], errors="coerce")
    return frame.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)


def read_verdicts(folder: Path, notes: Notes) -> list[dict]:
    """verdicts.json: a list of {expression, value, limit, passed} (or {"verdicts": [...]})."""
    return files.read_verdicts_json(folder, notes)


def _metadata(folder: Path, notes: Notes) -> dict:
    # A run that crashed may leave no run.json, or a damaged one; its numbers are still worth a report.
    return files.read_run_json(folder, notes) or {}


def _failures_as_errors(failures: pd.DataFrame) -> pd.DataFrame:
    if failures.empty:
        return pd.DataFrame(columns=ERROR_COLUMNS)
    frame = pd.DataFrame(
        {
            "type": failures["Method"],
            "name": failures["Name"],
            "error": failures["Error"],
            "phase": "",
            "code": [reply_code(str(e)) if reply_code(str(e)).isdigit() else "" for e in failures["Error"]],
            "count": failures["Occurrences"],
            "example": "",
        }
    )
    return frame.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)


def _order_phases(rows: list[Row]) -> list[Row]:
    """Phases in protocol order (`loadkit.phases`); names that are not phases follow, by name."""
    return sorted(rows, key=lambda row: (row.type, phase_position(row.name), row.name))


_is_phase_type = is_phase_type  # Locust's rows of a phase_stats run (SMTP-phase): phase times, not requests


# -- metrics.jsonl -----------------------------------------------------------------


def _from_metrics(folder: Path, run: Run, progress, notes: Notes) -> bool:
    metrics = read_metrics(folder / METRICS_FILE, progress, notes)
    if metrics is None:
        run.problems.append(f"{METRICS_FILE} holds no interval")
        return False
    run.source = METRICS_FILE
    run.duration = metrics.duration
    run.origin = metrics.origin
    run.bucket_seconds = metrics.bucket_seconds
    duration = metrics.duration or None

    def row(totals, kind: str) -> Row:
        count = totals.ok + totals.failed
        failed = totals.failed_distribution if kind == "request" and totals.failed_counts.any() else None
        return Row(
            type=totals.type,
            name=totals.name,
            count=count,
            failures=totals.failed,
            rate=count / duration if duration else None,
            latency=totals.distribution.summary_ms(),
            kind=kind,
            failed_latency=None if failed is None else failed.summary_ms(),
        )

    requests = sorted(metrics.of_kind("request"), key=lambda t: (t.type, t.name))
    run.requests = [row(t, "request") for t in requests]
    run.phases = _order_phases([row(t, "phase") for t in metrics.of_kind("phase")])
    if requests:
        merged = requests[0].counts.copy()
        for totals in requests[1:]:
            merged += totals.counts
        count = sum(t.ok + t.failed for t in requests)
        total = Distribution.from_counts(merged)
        failed = sum(t.failed_counts for t in requests[1:]) + requests[0].failed_counts
        run.total = Row(
            "", TOTAL_LABEL, count, sum(t.failed for t in requests), count / duration if duration else None, total.summary_ms(), "total",
            Distribution.from_counts(failed).summary_ms() if failed.any() else None,
        )
        run.distributions = {r.label: t.distribution for r, t in zip(run.requests, requests)}
        if len(requests) > 1:
            run.distributions[TOTAL_LABEL] = total
    run.timeline = metrics.timeline
    run.open_model = metrics.open_model
    run.percentiles_over_time = {f"{key[0]} {key[1]}".strip(): frame for key, frame in sorted(metrics.percentiles_over_time.items())}
    if len(run.percentiles_over_time) > 1:
        run.percentiles_over_time[TOTAL_LABEL] = metrics.total_over_time[["elapsed", "p50", "p95", "p99"]]
    seconds = f"{metrics.bucket_seconds} s" if metrics.bucket_seconds > 1 else "second"
    run.percentiles_note = f"Percentiles of each {seconds}, from the merge of its histograms."
    if metrics.source != METRICS_FILE:
        run.percentiles_note += f" Read from {metrics.source}, the run's intervals merged per minute as it wrote them."
    run.knee = metrics.total_over_time.dropna(subset=["p95"])[["elapsed", "rate", "p95", "p99"]]
    run.reply_codes = metrics.reply_codes if metrics.reply_codes.shape[1] > 1 else None
    errors = []
    for totals in requests:
        for error, count in totals.errors.items():
            code = reply_code(error)
            errors.append({"type": totals.type, "name": totals.name, "error": error, "phase": "",
                           "code": code if code.isdigit() else "", "count": count, "example": ""})  # fmt: skip
    if errors:
        run.errors = pd.DataFrame(errors, columns=ERROR_COLUMNS).sort_values("count", ascending=False, kind="stable")
        run.errors_source = METRICS_FILE
    return True


# -- Locust CSV ------------------------------------------------------------------------


def _csv_value(row: pd.Series, column: str):
    if column not in row.index:
        return None
    value = row[column]
    return float(value) if _is_number(value) else None


CSV_LATENCY_COLUMNS = {"min": "Min Response Time", "p50": "50%", "p90": "90%", "p95": "95%", "p99": "99%", "p99.9": "99.9%", "max": "Max Response Time"}
CSV_CURVE_COLUMNS = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%")


def _from_csv(prefix: Path, run: Run) -> None:
    stats = load_stats(prefix)
    history = load_history(prefix)
    run.source = prefix.name + STATS_SUFFIX
    rows = []
    for _, item in stats.iterrows():
        count = _csv_value(item, "Request Count")
        latency = {key: _csv_value(item, column) for key, column in CSV_LATENCY_COLUMNS.items()}
        if latency["p50"] is None:
            latency["p50"] = _csv_value(item, "Median Response Time")
        if not count:
            # Locust writes 0 for the min and max of an entry with no requests.
            latency = dict.fromkeys(latency)
        is_total = item["Name"] == AGGREGATED and item["Type"] == ""
        rows.append(
            Row(
                type=str(item["Type"]),
                name=TOTAL_LABEL if is_total else str(item["Name"]),
                count=count,
                failures=_csv_value(item, "Failure Count"),
                rate=_csv_value(item, "Requests/s"),
                latency=latency,
                kind="total" if is_total else "request",
            )
        )
        if count:
            points = [(float(c.rstrip("%")), _csv_value(item, c)) for c in CSV_CURVE_COLUMNS]
            run.percentile_points[rows[-1].label] = [(p, v) for p, v in points if v is not None]
    run.requests = [r for r in rows if r.kind == "request" and not _is_phase_type(r.type)]
    run.phases = _order_phases([replace(r, kind="phase") for r in rows if r.kind == "request" and _is_phase_type(r.type)])
    run.total = next((r for r in rows if r.kind == "total"), None)
    if len(run.requests) == 1:
        run.percentile_points.pop(TOTAL_LABEL, None)
    timeline = aggregated_timeline(history)
    if len(timeline):
        run.origin = float(timeline["timestamp"].iloc[0])
        run.duration = float(timeline["elapsed"].iloc[-1]) or None
        run.timeline = pd.DataFrame(
            {
                "elapsed": timeline["elapsed"],
                "ok_per_s": timeline["requests_per_s"] - timeline["failures_per_s"],
                "failed_per_s": timeline["failures_per_s"],
                "users": timeline["users"],
            }
        )
        if history_is_per_request(history):
            run.percentiles_note = "Percentiles of the last ~10 seconds, as Locust writes them with --csv-full-history."
            run.percentiles_over_time = _csv_percentiles_per_name(history, run.origin, len(run.requests) > 1)
        else:
            run.percentiles_note = (
                "Percentiles of all requests since the start, as Locust writes them without --csv-full-history."
            )
            run.percentiles_over_time = {TOTAL_LABEL: timeline[["elapsed", "p50", "p95", "p99"]]}
    run.errors = _failures_as_errors(load_failures(prefix))
    run.errors_source = prefix.name + FAILURES_SUFFIX
    run.exceptions = load_exceptions(prefix)


def _csv_percentiles_per_name(history: pd.DataFrame, origin: float, with_total: bool) -> dict[str, pd.DataFrame]:
    result = {}
    for (kind, name), rows in history.groupby(["Type", "Name"], sort=True):
        is_total = kind == "" and name == AGGREGATED
        if is_total and not with_total:
            continue
        rows = rows.dropna(subset=["Timestamp"]).sort_values("Timestamp").drop_duplicates("Timestamp", keep="last")
        frame = pd.DataFrame({"elapsed": rows["Timestamp"].astype(float) - origin})
        for key, column in (("p50", "50%"), ("p95", "95%"), ("p99", "99%")):
            values = rows[column].astype(float) if column in rows.columns else float("nan")
            # Locust writes 0 until its window has a start: unknown, not 0 ms.
            frame[key] = pd.Series(values).where(lambda v: v > 0)
        result[TOTAL_LABEL if is_total else f"{kind} {name}".strip()] = frame.reset_index(drop=True)
    if TOTAL_LABEL in result:
        result[TOTAL_LABEL] = result.pop(TOTAL_LABEL)  # last
    return result


# -- Locust JSON ---------------------------------------------------------------------------


def _from_json(path: Path, run: Run) -> None:
    try:
        entries = read_locust_json(path)
    except LocustJsonError as error:
        raise ReportError(str(error)) from None
    run.source = path.name
    timeline, origin = json_timeline(entries)
    run.timeline = timeline
    run.origin = origin
    starts = [e.start_time for e in entries if e.start_time]
    ends = [e.last_request for e in entries if e.last_request]
    duration = (max(ends) - min(starts)) if starts and ends else (len(timeline) or None)
    run.duration = duration if duration and duration > 0 else None

    def row(type_: str, name: str, count: int, failures: int, distribution: Distribution, kind: str) -> Row:
        return Row(type_, name, count, failures, count / run.duration if run.duration else None, distribution.summary_ms(), kind)

    # phase_stats rows are phase times, not requests: the phases table, in protocol order
    phase_entries = sorted((e for e in entries if is_phase_type(e.type)), key=lambda e: (e.type, phase_position(e.name), e.name))
    entries = sorted((e for e in entries if not is_phase_type(e.type)), key=lambda e: (e.type, e.name))
    run.requests = [row(e.type, e.name, e.requests, e.failures, e.distribution, "request") for e in entries]
    run.phases = [row(e.type, e.name, e.requests, e.failures, e.distribution, "phase") for e in phase_entries]
    run.distributions = {r.label: e.distribution for r, e in zip(run.requests, entries)}
    if entries:
        merged = Distribution.from_samples(
            [v for e in entries for v in e.distribution.lowest], [c for e in entries for c in e.distribution.counts]
        )
        run.total = row("", TOTAL_LABEL, sum(e.requests for e in entries), sum(e.failures for e in entries), merged, "total")
        if len(entries) > 1:
            run.distributions[TOTAL_LABEL] = merged


# -- finding and loading ---------------------------------------------------------------------


def locate(results: str | Path) -> tuple[str, Path]:
    """What ``results`` is, without reading it: ("json", file), ("metrics", folder) or ("csv", prefix).

    Raises ``ReportError`` (one line) when nothing readable is there.
    """
    try:
        return files.locate(results)
    except ResultsError as error:
        raise ReportError(str(error)) from None


def load_run(results: str | Path, progress=None) -> Run:
    """Load a results folder, a Locust ``--csv`` prefix or stats file, or a Locust JSON file.

    ``progress(fraction)`` follows the reading of metrics.jsonl.
    Raises ``ReportError`` (one line) when nothing readable is there.
    """
    kind, path = locate(results)
    notes = Notes()
    if kind == "json":
        run = Run(path=path, source=path.name)
        run.metadata = _metadata(path.parent, notes)
        _from_json(path, run)
    elif kind == "metrics":
        run = Run(path=path, source=METRICS_FILE)
        run.metadata = _metadata(path, notes)
        if _from_metrics(path, run, progress, notes):
            _add_locust_extras(path, run)
        else:
            _fallback_to_locust_files(path, run)
    else:
        run = Run(path=path.parent, source=path.name + STATS_SUFFIX)
        run.metadata = _metadata(path.parent, notes)
        _from_csv(path, run)
    folder = run.folder
    run.events = read_events(folder, notes)
    errors = read_errors_csv(folder, notes)
    if errors is not None:
        run.errors, run.errors_source = errors, ERRORS_FILE
    run.verdicts = read_verdicts(folder, notes)
    from loadkit.report._server_side import read_server_side  # imports _charts: matplotlib only when loading

    run.server_side = read_server_side(folder, notes)
    run.problems.extend(notes.lines())
    return run


def _fallback_to_locust_files(folder: Path, run: Run) -> None:
    try:
        prefix = find_prefix(folder)
    except ReportError:
        return
    _from_csv(prefix, run)


def _add_locust_extras(folder: Path, run: Run) -> None:
    """Locust's own failures (with their messages) and exceptions, when its CSV is there too."""
    try:
        prefix = find_prefix(folder)
    except ReportError:
        return
    try:
        failures = load_failures(prefix)
        if not failures.empty:
            run.errors, run.errors_source = _failures_as_errors(failures), prefix.name + FAILURES_SUFFIX
        run.exceptions = load_exceptions(prefix)
    except ReportError as error:
        run.problems.append(str(error))


def integrity_problems(run: Run) -> list[dict]:
    return [event for event in run.events if str(event.get("kind")) not in NORMAL_EVENTS]
