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

from loadkit.hdr import add_span, decode_span, empty_counts, encode, percentiles_of_counts
from loadkit.metrics._series import PHASE, REQUEST
from loadkit.results import METRICS_FILE

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

    def add_json(self, series: dict) -> None:
        self.ok += int(series.get("ok", 0))
        self.failed += int(series.get("failed", 0))
        self.bytes += int(series.get("bytes", 0))
        for key, count in (series.get("errors") or {}).items():
            self.errors[key] = self.errors.get(key, 0) + int(count)
        add_span(self.counts, decode_span(series["histogram"]))

    def copy(self) -> "SeriesTotal":
        other = SeriesTotal(self.kind, self.type, self.name)
        other.ok, other.failed, other.bytes = self.ok, self.failed, self.bytes
        other.errors = dict(self.errors)
        other.counts = self.counts.copy()
        return other

    def percentiles_us(self, wanted=TABLE_PERCENTILES) -> list[float | None]:
        """The value (µs) at each percentile; 100 is the maximum."""
        return percentiles_of_counts(self.counts, list(wanted))


def interval_point(interval: dict) -> dict:
    """One second of the charts: rates and each phase's percentiles (ms)."""
    seconds = max(float(interval["end"]) - float(interval["start"]), 0.001)
    point = {"time": float(interval["start"]), "seconds": seconds, "messages": 0, "failed": 0, "bytes": 0,
             "sessions": 0, "users": interval.get("users"), "phases": {}, "requests": {}, "replies": {}}
    for series in interval.get("series", ()):
        kind = series["kind"]
        counts = empty_counts()
        add_span(counts, decode_span(series["histogram"]))
        values = percentiles_of_counts(counts, list(CHART_PERCENTILES))
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

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.offset = 0  # bytes of metrics.jsonl already read
        self.totals: dict[tuple[str, str, str], SeriesTotal] = {}
        self.timeline: deque[dict] = deque(maxlen=TIMELINE_POINTS)
        self.first_start: float | None = None
        self.last_end: float | None = None

    def follow(self, folder: Path | None) -> None:
        """Read `folder` from now on (a new test's folder starts from nothing)."""
        folder = Path(folder) if folder is not None else None
        if folder != self.folder:
            self.__init__(folder)

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
        for line in data[: end + 1].splitlines():
            try:
                interval = json.loads(line)
                self.add_interval(interval)
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line: the report says so; the live view skips it
            added += 1
        return added

    def add_interval(self, interval: dict, into: dict | None = None, timeline: list | None = None) -> None:
        totals = self.totals if into is None else into
        for series in interval.get("series", ()):
            key = (series["kind"], series["type"], series["name"])
            total = totals.get(key)
            if total is None:
                total = totals[key] = SeriesTotal(*key)
            total.add_json(series)
        (self.timeline if timeline is None else timeline).append(interval_point(interval))
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
        return totals, timeline[-TIMELINE_POINTS:]


def _interval_json(interval) -> dict:
    """An open `loadkit.metrics._intervals.Interval` as metrics.jsonl would hold it."""
    return {"start": interval.start, "end": interval.end, "users": interval.users,
            "series": [_series_json(series) for series in list(interval.series.values())]}


def _series_json(series) -> dict:
    return {"kind": series.kind, "type": series.type, "name": series.name, "ok": series.ok,
            "failed": series.failed, "bytes": series.bytes, "errors": dict(series.errors),
            "histogram": encode(series.histogram)}
