"""What a run has recorded so far, read when the web UI asks: never on the request path.

The run's `RunRecorder` already merges every process's intervals (a
master: its workers' reports; a local runner: its own recorder) and writes
each settled one to metrics.jsonl. `LiveRun` follows that file from where
it stopped reading, adds each new interval into run-wide counts, and keeps
a short timeline for the charts. Intervals not written yet (a master keeps
the last ~5 s open until every worker's share is in) are added on top of a
copy for each snapshot, so the numbers shown are the recorder's own, merged
the same way, and end equal to the results folder's.
"""

from __future__ import annotations

import json
import re
from collections import deque
from pathlib import Path

from loadkit.hdr import (
    LOWEST_US,
    Distribution,
    add_span,
    decode_span,
    empty_counts,
    encode,
    percentiles_of_counts,
    standard_layout,
)
from loadkit.metrics._series import PHASE, REQUEST, MergedCounts
from loadkit.results import METRICS_FILE

PAUSE_EVERY = 100  # lines (~75 ms of work) between pauses
TIMELINE_POINTS = 600  # seconds of history kept for the charts
CHART_PERCENTILES = (50.0, 95.0, 99.0)
TABLE_PERCENTILES = (50.0, 95.0, 99.0, 100.0)
# loadkit's error keys (`loadkit.smtp`): "550 5.3.0 at RCPT", a transport error "timed out at DATA".
ERROR_KEY = re.compile(r"^(?P<what>.*?) at (?P<phase>[A-Za-z-]+)$")
REPLY_CODE = re.compile(r"^[2-5]\d\d\b")


def reply_of(error_key: str) -> tuple[str, str]:
    """(code, phase) of an error key: ("550", "rcpt"), ("timed out", "data"); (key, "") for another error."""
    text = error_key.strip()
    match = ERROR_KEY.match(text)
    if match is None:
        return text or "(empty)", ""
    code = REPLY_CODE.match(match["what"])
    return code.group(0) if code else match["what"], match["phase"].lower()


class SeriesTotal:
    """One request name or phase over the run: counts, errors and the merged histogram's counts."""

    __slots__ = ("kind", "type", "name", "ok", "failed", "bytes", "errors", "counts")

    def __init__(self, kind: str, type_: str, name: str):
        self.kind, self.type, self.name = kind, type_, name
        self.ok = self.failed = self.bytes = 0
        self.errors: dict[str, int] = {}
        self.counts = empty_counts()  # accepted requests; every time of a phase

    def add_json(self, series: dict, span=None) -> None:
        self.ok += int(series.get("ok", 0))
        self.failed += int(series.get("failed", 0))
        self.bytes += int(series.get("bytes", 0))
        for key, count in (series.get("errors") or {}).items():
            self.errors[key] = self.errors.get(key, 0) + int(count)
        add_span(self.counts, _span(series["histogram"]) if span is None else span)

    def copy(self) -> "SeriesTotal":
        other = SeriesTotal(self.kind, self.type, self.name)
        other.ok, other.failed, other.bytes = self.ok, self.failed, self.bytes
        other.errors = dict(self.errors)
        other.counts = self.counts.copy()
        return other

    def percentiles_us(self, wanted=TABLE_PERCENTILES) -> list[float | None]:
        """The value (µs) at each percentile; 100 is the maximum."""
        return percentiles_of_counts(self.counts, list(wanted))


def interval_point(interval: dict, spans: list | None = None) -> dict:
    """One second of the charts: rates and each phase's percentiles (ms); `spans`: its series' decoded histograms."""
    seconds = max(float(interval["end"]) - float(interval["start"]), 0.001)
    point = {"time": float(interval["start"]), "seconds": seconds, "messages": 0, "failed": 0, "bytes": 0,
             "sessions": 0, "users": interval.get("users"), "phases": {}, "requests": {}, "replies": {}}
    all_series = interval.get("series", ())
    for series, span in zip(all_series, spans or [_span(one["histogram"]) for one in all_series]):
        kind = series["kind"]
        values = span_percentiles(span, CHART_PERCENTILES)
        in_ms = [None if value is None else value / 1000.0 for value in values]
        if kind == REQUEST:
            point["messages"] += int(series.get("ok", 0)) + int(series.get("failed", 0))
            point["failed"] += int(series.get("failed", 0))
            point["bytes"] += int(series.get("bytes", 0))
            point["requests"][f'{series["type"]} {series["name"]}'] = in_ms
            for key, count in (series.get("errors") or {}).items():
                code, phase = reply_of(key)
                label = f"{code} at {phase}" if phase else code
                point["replies"][label] = point["replies"].get(label, 0) + int(count)
        elif kind == PHASE:
            point["phases"][series["name"]] = in_ms
            if series["name"] == "connect":
                point["sessions"] += int(series.get("ok", 0)) + int(series.get("failed", 0))
    return point


class LiveRun:
    """Run-wide totals and a timeline of one results folder, read as it grows."""

    def __init__(self, folder: Path | None = None, pause=None):
        self.folder = Path(folder) if folder is not None else None
        self.pause = pause  # called between batches of lines: a master's loop goes on during a long first read
        self.offset = 0  # bytes of metrics.jsonl already read
        self.totals: dict[tuple[str, str, str], SeriesTotal] = {}
        self.timeline: deque[dict] = deque(maxlen=TIMELINE_POINTS)
        self.first_start: float | None = None
        self.last_end: float | None = None

    def follow(self, folder: Path | None) -> None:
        """Read `folder` from now on (a new test's folder starts from nothing)."""
        folder = Path(folder) if folder is not None else None
        if folder != self.folder:
            self.__init__(folder, self.pause)

    def read_new(self) -> int:
        """Add the intervals written since the last call; how many."""
        if self.folder is None:
            return 0
        path = self.folder / METRICS_FILE
        try:
            with path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return 0
        end = data.rfind(b"\n")
        if end < 0:
            return 0
        self.offset += end + 1
        added = 0
        for number, line in enumerate(data[: end + 1].splitlines(), 1):
            if self.pause is not None and number % PAUSE_EVERY == 0:
                self.pause()
            try:
                interval = json.loads(line)
                self.add_interval(interval)
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line: the report says so; the live view skips it
            added += 1
        return added

    def add_interval(self, interval: dict, into: dict | None = None, timeline: list | None = None) -> None:
        totals = self.totals if into is None else into
        all_series = interval.get("series", ())
        spans = [_span(series["histogram"]) for series in all_series]  # decoded once, for both uses
        for series, span in zip(all_series, spans):
            key = (series["kind"], series["type"], series["name"])
            total = totals.get(key)
            if total is None:
                total = totals[key] = SeriesTotal(*key)
            total.add_json(series, span)
        (self.timeline if timeline is None else timeline).append(interval_point(interval, spans))
        if into is not None:
            return
        start, end = float(interval["start"]), float(interval["end"])
        self.first_start = start if self.first_start is None else min(self.first_start, start)
        self.last_end = end if self.last_end is None else max(self.last_end, end)

    def snapshot(self, open_intervals=()) -> tuple[dict, list[dict]]:
        """(totals, timeline) with the not yet written intervals (`Interval` objects) added to copies."""
        self.read_new()
        if not open_intervals:
            return self.totals, list(self.timeline)
        totals = {key: total.copy() for key, total in self.totals.items()}
        timeline = list(self.timeline)
        for interval in sorted(open_intervals, key=lambda one: one.start):
            self.add_interval(_interval_json(interval), totals, timeline)
            timeline[-1]["open"] = True  # a master's workers may not all have sent their share of it yet
        return totals, timeline[-TIMELINE_POINTS:]


def _interval_json(interval) -> dict:
    """An open `loadkit.metrics._intervals.Interval` as metrics.jsonl would hold it, its histograms as
    counts arrays (no encoding: they are read here and dropped)."""
    return {"start": interval.start, "end": interval.end, "users": interval.users,
            "series": [_series_json(series) for series in list(interval.series.values())]}


def _series_json(series) -> dict:
    return {"kind": series.kind, "type": series.type, "name": series.name, "ok": series.ok,
            "failed": series.failed, "bytes": series.bytes, "errors": dict(series.errors),
            "histogram": counts_of(series.histogram)}


def span_percentiles(span, wanted) -> list[float | None]:
    """The value (µs) at each percentile of a `decode_span` result, walking only its part of the layout."""
    import numpy as np

    start, values = span
    layout = standard_layout()
    end = start + len(values)
    nonzero = np.flatnonzero(values)
    distribution = Distribution(layout.lowest[start:end][nonzero], layout.highest[start:end][nonzero],
                                np.asarray(values)[nonzero].astype(np.int64))
    return distribution.percentiles(list(wanted))


def counts_of(histogram):
    """A histogram's counts in the standard layout as a numpy array (a view of its own when it has that layout)."""
    import numpy as np

    if isinstance(histogram, MergedCounts):  # a master's merge of its workers' reports
        return histogram.counts.copy() if histogram.counts is not None else empty_counts()
    counts = np.frombuffer(histogram.counts, dtype=np.int64)
    if len(counts) == len(empty_counts()) and histogram.lowest_trackable_value == LOWEST_US:
        return counts
    return encode(histogram)  # another layout: re-bucketed by the decoder, like any metrics.jsonl line


def _span(histogram) -> tuple:
    """`decode_span`'s form of an encoded histogram, or of counts already decoded."""
    if isinstance(histogram, str):
        return decode_span(histogram)
    return 0, histogram
