"""Read ``metrics.jsonl``: one line per interval, histograms per request name and phase.

Request histograms are of accepted requests, failed ones apart (OK/KO);
the charts' percentiles are of accepted requests. The file is streamed once (after a glance at its first and last lines to
learn the run's span), so memory and time grow with the run's duration, not
with its number of requests. Intervals are grouped into time buckets of a
whole number of seconds, at most ``MAX_POINTS`` per run, for the charts; a
bucket's percentiles come from the merge of its intervals' histograms, so
they stay exact however long the run. The summary merges every interval.

A run longer than ten hours has buckets of whole minutes, and is read from
metrics-minute.jsonl (each line the exact merge of a minute's intervals,
written by the run) when that covers the same span and reads without
damage: the same totals, percentiles and chart points from sixty times fewer
histograms. Otherwise metrics.jsonl is read, as for a shorter run.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loadkit.hdr import Distribution, add_span, decode_span, empty_counts, percentiles_of_counts
from loadkit.report._open_model import COUNTS as OPEN_COUNTS
from loadkit.report._open_model import OpenModelFacts
from loadkit.results import (
    METRICS_FILE,
    MINUTE_SECONDS,
    MINUTES_FILE,
    Notes,
    SpanDecoder,
    first_and_last_intervals,
    measure_minutes,
    read_intervals,
    reads_minutes,
)

MAX_POINTS = 600  # time buckets per chart: enough for a 9-inch chart, cheap to draw
OVER_TIME_PERCENTILES = (50.0, 95.0, 99.0)
REPLY_CODE = re.compile(r"\s*([2-5]\d\d)\b")
# A failure message that quotes a reply: "SMTPReplyError(550, ...)", "Exception('550 5.7.1 ...')".
QUOTED_REPLY_CODE = re.compile(r"(?<![\d.])([45]\d\d)(?=[ ,\-]|$)")
# Locust's FastHttpUser fails a request with "LocustBadStatusCode(code=404)": the HTTP status.
HTTP_STATUS_CODE = re.compile(r"\bcode=([1-5]\d\d)\b")


def reply_code(error: str) -> str:
    """The SMTP reply code an error key starts with ("550 5.1.1 at RCPT" -> "550"), or the HTTP
    status of a failed web request ("LocustBadStatusCode(code=404)" -> "404"), else the key."""
    match = REPLY_CODE.match(error) or QUOTED_REPLY_CODE.search(error) or HTTP_STATUS_CODE.search(error)
    return match.group(1) if match else error.strip() or "(empty)"


@dataclass
class SeriesTotals:
    """One request name or phase over the whole run."""

    kind: str
    type: str
    name: str
    ok: int = 0
    failed: int = 0
    bytes: int = 0
    errors: Counter = field(default_factory=Counter)
    counts: np.ndarray = field(default_factory=empty_counts)  # accepted requests (every time, for a phase)
    failed_counts: np.ndarray = field(default_factory=empty_counts)  # failed requests

    @property
    def distribution(self) -> Distribution:
        return Distribution.from_counts(self.counts)

    @property
    def failed_distribution(self) -> Distribution:
        return Distribution.from_counts(self.failed_counts)


@dataclass
class MetricsData:
    """What the report needs from metrics.jsonl."""

    origin: float  # epoch seconds of the first interval's start
    end: float  # epoch seconds of the last interval's end
    bucket_seconds: int
    intervals: int  # lines read: minutes when read from MINUTES_FILE
    series: dict[tuple[str, str, str], SeriesTotals]  # (kind, type, name) -> totals
    timeline: pd.DataFrame  # elapsed, seconds, ok_per_s, failed_per_s, users
    percentiles_over_time: dict[tuple[str, str], pd.DataFrame]  # (type, name) -> elapsed, p50, p95, p99
    total_over_time: pd.DataFrame  # elapsed, rate, p50, p95, p99 of all requests (the knee)
    reply_codes: pd.DataFrame  # elapsed + one column per code: failures per second
    problems: list[str] = field(default_factory=list)
    open_model: OpenModelFacts | None = None  # arrivals of a run with --rate, per time bucket
    source: str = METRICS_FILE  # the file read: METRICS_FILE, or MINUTES_FILE for a long run

    @property
    def duration(self) -> float:
        return max(self.end - self.origin, 0.0)

    def of_kind(self, kind: str) -> list[SeriesTotals]:
        return [totals for key, totals in self.series.items() if key[0] == kind]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Buckets:
    """Per-bucket sums, and the open bucket's histograms per request name.

    A request name's histograms are merged per bucket first and the bucket into the
    name's totals when it closes: one addition per histogram, not two.
    """

    def __init__(self, origin: float, bucket_seconds: int, end: float, series: dict[tuple[str, str, str], SeriesTotals]):
        self.origin = origin
        self.width = bucket_seconds
        self.end = end
        self.series = series
        self.ok = defaultdict(int)
        self.failed = defaultdict(int)
        self.users: dict[int, float] = {}
        self.codes: dict[int, Counter] = defaultdict(Counter)
        self.arrivals: dict[str, dict[int, int]] = {name: defaultdict(int) for name in OPEN_COUNTS}
        self.seen: dict[int, None] = {}  # buckets holding an interval, in file order
        self.open_index: int | None = None
        self.open_counts: dict[tuple[str, str, str], np.ndarray] = {}
        self.percentile_rows: dict[tuple[str, str], list] = defaultdict(list)
        self.total_rows: list = []

    def index(self, start: float) -> int:
        return max(int((start - self.origin) // self.width), 0)

    def add_histogram(self, index: int, key: tuple[str, str, str], span: tuple[int, np.ndarray]) -> None:
        if self.open_index is None:
            self.open_index = index
        elif index > self.open_index:
            self.close()
            self.open_index = index
        # A line out of time order joins the open bucket: no bucket is ever reopened.
        held = self.open_counts.get(key)
        if held is None:
            held = self.open_counts[key] = empty_counts()
        add_span(held, span)

    def close(self) -> None:
        if self.open_index is None or not self.open_counts:
            return
        elapsed = self.open_index * self.width
        total = None
        for key, counts in self.open_counts.items():
            self.series[key].counts += counts
            self.percentile_rows[key[1:]].append((elapsed, *percentiles_of_counts(counts, OVER_TIME_PERCENTILES)))
            total = counts if total is None else total + counts
        self.total_rows.append((elapsed, *percentiles_of_counts(total, OVER_TIME_PERCENTILES)))
        self.open_counts = {}
        self.open_index = None

    def seconds_of(self, index: int) -> float:
        """How much of the run a bucket covers (the last one may be cut short)."""
        start = self.origin + index * self.width
        return max(min(start + self.width, self.end) - start, 1e-9)

    def frames(self) -> tuple[pd.DataFrame, dict, pd.DataFrame, pd.DataFrame]:
        self.close()
        count = max(math.ceil((self.end - self.origin) / self.width), 1)
        indexes = np.arange(count)
        seconds = np.array([self.seconds_of(i) for i in indexes])
        ok = np.array([self.ok.get(i, 0) for i in indexes], dtype=float)
        failed = np.array([self.failed.get(i, 0) for i in indexes], dtype=float)
        timeline = pd.DataFrame(
            {
                "elapsed": indexes * float(self.width),
                "seconds": seconds,
                "ok_per_s": ok / seconds,
                "failed_per_s": failed / seconds,
                "users": [self.users.get(i, np.nan) for i in indexes],
            }
        )
        names = ["elapsed", "p50", "p95", "p99"]
        over_time = {}
        for key, rows in self.percentile_rows.items():
            frame = pd.DataFrame(rows, columns=names, dtype=float)
            frame[names[1:]] = frame[names[1:]] / 1000.0  # µs -> ms
            over_time[key] = frame
        total = pd.DataFrame(self.total_rows, columns=names, dtype=float)
        total[names[1:]] = total[names[1:]] / 1000.0
        rate_by_elapsed = pd.Series((ok + failed) / seconds, index=indexes * float(self.width))
        total.insert(1, "rate", total["elapsed"].map(rate_by_elapsed))
        code_totals = Counter()
        for counter in self.codes.values():
            code_totals.update(counter)
        codes = pd.DataFrame({"elapsed": indexes * float(self.width)})
        for code, _ in code_totals.most_common():
            codes[code] = [self.codes[i].get(code, 0) / seconds[i] if i in self.codes else 0.0 for i in indexes]
        return timeline, over_time, total, codes

    def open_model(self) -> OpenModelFacts | None:
        """Arrivals per second of each bucket that holds an interval; None for a closed-model run."""
        totals = {name: sum(counts.values()) for name, counts in self.arrivals.items()}
        if not totals["offered"]:
            return None
        indexes = list(self.seen)
        per_second = {name: [counts.get(i, 0) / self.seconds_of(i) for i in indexes] for name, counts in self.arrivals.items()}
        corrected, service = empty_counts(), empty_counts()
        for (kind, _type, name), totals_of in self.series.items():
            if kind == "request":
                corrected += totals_of.counts
            elif kind == "phase" and name == "service":
                service += totals_of.counts
        return OpenModelFacts([i * float(self.width) for i in indexes], per_second, totals, _p99_ms(corrected), _p99_ms(service),
                              self.width)  # fmt: skip


def _p99_ms(counts: np.ndarray) -> float | None:
    value = percentiles_of_counts(counts, [99.0])[0]
    return None if value is None else value / 1000.0


def bucket_width(span: float) -> int:
    """Whole seconds per time bucket so that a run has at most MAX_POINTS of them; whole minutes
    for a run read from its minutes (`loadkit.results.reads_minutes`), so none is split."""
    width = max(1, math.ceil(span / MAX_POINTS))
    if reads_minutes(span):
        width = MINUTE_SECONDS * math.ceil(width / MINUTE_SECONDS)
    return width


def read_metrics(path: str | Path, progress=None, notes: Notes | None = None) -> MetricsData | None:
    """metrics.jsonl as totals per series and time buckets; None when it holds no interval.

    Damaged lines are skipped and said in `notes` (see `loadkit.results`).
    ``progress(fraction)`` is called now and then with the share of the file read.
    A long run may be read from its minutes instead (`MetricsData.source` says which).
    """
    path = Path(path)
    folder = path.parent
    notes = notes if notes is not None else Notes()
    first, last = first_and_last_intervals(folder, decode_span)
    if first is None:
        for _ in read_intervals(folder, notes):
            pass  # nothing sound: say what is there
        return None
    origin = float(first["start"])
    end = max(float(last.get("end", last["start"] + 1)), origin)
    width = bucket_width(end - origin)
    decode = SpanDecoder().decode
    data = measure_minutes(folder, first, last, lambda records: _read(records, origin, end, width, notes),
                           decode, progress)
    if data is not None:
        data.source = MINUTES_FILE
        return data
    return _read(read_intervals(folder, notes, decode=decode, progress=progress), origin, end, width, notes)


def _read(records, origin: float, end: float, width: int, notes: Notes) -> MetricsData | None:
    """Totals and time buckets of `records` ((line number, interval) in file order)."""
    series: dict[tuple[str, str, str], SeriesTotals] = {}
    buckets = _Buckets(origin, width, end, series)
    intervals = 0
    codes_of: dict[str, str] = {}  # error key -> reply code: the same few keys, line after line
    # The loop runs for every series of every interval: its adds are written out, not called.
    for _number, record in records:
        intervals += 1
        start = float(record["start"])
        end = max(end, float(record.get("end", start + 1)))
        index = buckets.index(start)
        buckets.seen[index] = None
        if _is_number(record.get("users")):
            buckets.users[index] = float(record["users"])
        for entry in record.get("series", ()):
            kind = entry.get("kind", "request")
            key = (kind, entry.get("type", ""), entry.get("name", ""))
            totals = series.get(key)
            if totals is None:
                totals = series[key] = SeriesTotals(*key)
            ok, failed = entry.get("ok", 0), entry.get("failed", 0)
            totals.ok += ok
            totals.failed += failed
            totals.bytes += entry.get("bytes", 0)
            errors = entry.get("errors")
            if errors:
                for error, count in errors.items():
                    totals.errors[str(error)] += count
            if kind == "request":
                buckets.ok[index] += ok
                buckets.failed[index] += failed
                if errors:
                    codes = buckets.codes[index]
                    for error, count in errors.items():
                        code = codes_of.get(error)
                        if code is None:
                            code = codes_of[error] = reply_code(str(error))
                        codes[code] += count
            elif kind == "open" and key[2] in buckets.arrivals:
                buckets.arrivals[key[2]][index] += ok
            failed_span = entry.get("failed_histogram")
            if failed_span:
                first_index, values = failed_span
                totals.failed_counts[first_index : first_index + len(values)] += values
            span = entry.get("histogram")
            if not span:
                continue
            if kind == "request":
                buckets.add_histogram(index, key, span)  # into the totals when its bucket closes
            else:
                first_index, values = span
                totals.counts[first_index : first_index + len(values)] += values
    if intervals == 0:
        return None
    buckets.end = end
    timeline, over_time, total, codes = buckets.frames()  # closes the last bucket: totals complete
    return MetricsData(
        origin=origin,
        end=end,
        bucket_seconds=width,
        intervals=intervals,
        series=series,
        timeline=timeline,
        percentiles_over_time=over_time,
        total_over_time=total,
        reply_codes=codes,
        problems=notes.lines(),
        open_model=buckets.open_model(),
    )
