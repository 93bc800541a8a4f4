"""Intervals of a run: series merged per interval start, written in time order once settled
(the format: `loadkit.results._metrics`).

Locally an interval is complete at its tick. On a master, workers report
every few seconds, so an interval stays open for `settle` seconds before it
is written; data that arrives for an interval already written (a worker that
was cut off for a while) goes into the oldest open one, so totals stay exact.
"""

from __future__ import annotations

import math
import time

from loadkit.metrics._series import REQUEST, Series
from loadkit.results import flush_lines, write_interval


def tick_every_second(tick) -> None:
    """Call `tick(boundary)` at each whole second of the clock, forever (run it in a greenlet).

    Whole seconds make intervals of different processes line up when merged.
    """
    import gevent  # only the recording side ticks; the report reads intervals without gevent

    while True:
        now = time.time()
        gevent.sleep(math.floor(now) + 1 - now)
        tick(math.floor(time.time()))


class Interval:
    __slots__ = ("start", "end", "users", "series")

    def __init__(self, start: float, end: float):
        self.start = float(start)
        self.end = float(end)
        self.users: int | None = None
        self.series: dict[tuple[str, str, str], Series] = {}

    def add(self, series: Series) -> None:
        existing = self.series.get(series.key)
        if existing is None:
            self.series[series.key] = series
        else:
            existing.merge(series)

    def to_json(self) -> dict:
        line = {"start": self.start, "end": self.end}
        if self.users is not None:
            line["users"] = self.users
        line["series"] = [s.to_json() for s in self.series.values()]
        return line


class Totals:
    """Run-wide counts per (kind, type, name), kept as intervals go by."""

    def __init__(self):
        self.by_key: dict[tuple[str, str, str], list[int]] = {}  # [ok, failed, bytes]
        self.errors: dict[tuple[str, str, str], int] = {}  # (type, name, error key) of requests

    def add(self, series: Series) -> None:
        counts = self.by_key.setdefault(series.key, [0, 0, 0])
        counts[0] += series.ok
        counts[1] += series.failed
        counts[2] += series.bytes
        if series.kind == REQUEST:
            for error, count in series.errors.items():
                key = (series.type, series.name, error)
                self.errors[key] = self.errors.get(key, 0) + count

    def requests(self) -> tuple[int, int]:
        """(ok, failed) over every request series."""
        ok = failed = 0
        for (kind, _type, _name), counts in self.by_key.items():
            if kind == REQUEST:
                ok += counts[0]
                failed += counts[1]
        return ok, failed


class IntervalStore:
    """Open intervals by start; `flush(now)` writes those older than `settle` seconds to `out`."""

    def __init__(self, out, settle: float = 0.0):
        self.out = out  # a text file: one JSON line per interval
        self.settle = settle
        self.open: dict[float, Interval] = {}
        self.written_until = float("-inf")  # end of the last written interval
        self.totals = Totals()
        self.late = 0  # series that arrived after their interval was written

    def _interval(self, start: float, end: float) -> Interval:
        if start < self.written_until:
            self.late += 1
            if self.open:
                return self.open[min(self.open)]
            start, end = self.written_until, max(end, self.written_until + 1.0)
        interval = self.open.get(start)
        if interval is None:
            interval = self.open[start] = Interval(start, end)
        elif end > interval.end:
            interval.end = end
        return interval

    def add(self, start: float, end: float, series: list[Series]) -> None:
        if not series:
            return
        interval = self._interval(start, end)
        for one in series:
            interval.add(one)
            self.totals.add(one)

    def set_users(self, start: float, end: float, users: int) -> None:
        if start >= self.written_until:
            self._interval(start, end).users = users

    def flush(self, now: float | None = None) -> int:
        """Write settled intervals (all of them when `now` is None); returns how many."""
        starts = sorted(self.open)
        written = 0
        for start in starts:
            interval = self.open[start]
            if now is not None and interval.end > now - self.settle:
                break
            write_interval(self.out, interval.to_json())
            self.written_until = max(self.written_until, interval.end)
            del self.open[start]
            written += 1
        if written:
            flush_lines(self.out)  # ResultsError on a full disk: the lines before stay readable
        return written
