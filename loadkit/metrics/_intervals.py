"""Intervals of a run: series merged per interval start, written in time order once settled
(the format: `loadkit.results._metrics`).

Locally an interval is complete at its tick. On a master, workers report
every few seconds, so an interval stays open for `settle` seconds before it
is written; data that arrives for an interval already written (a worker that
was cut off for a while) goes into the oldest open one, so totals stay exact.

A master adds workers' series as they came, JSON (`IntervalStore.add_json`):
their histograms are added into counts arrays and encoded once, when the
interval is written (`MergedSeries`). What the master has merged so far, run
wide and per key, is `IntervalStore.merged()`.

Each written interval is also added into its minute (`MinuteRollup`), which
is written to metrics-minute.jsonl once the next minute starts, and at the
end: long runs are read from there (the format: `loadkit.results._minutes`).
The run's merged series then grow a minute at a time, from the minute's
counts: each second is still added once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from loadkit.metrics._series import REQUEST, MergedSeries, Series
from loadkit.results import MINUTE_SECONDS, flush_lines, write_interval


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

    def add_json(self, key: tuple[str, str, str], data: dict) -> None:
        """Add a series as a worker sent it (`Series.to_json`), into this interval's merged one."""
        existing = self.series.get(key)
        if existing is None:
            existing = self.series[key] = MergedSeries(*key)
        elif not isinstance(existing, MergedSeries):
            existing = self.series[key] = MergedSeries.of_series(existing)
        existing.add_json(data)

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
        self.add_counts(series.key, series.ok, series.failed, series.bytes, series.errors)

    def add_counts(self, key: tuple[str, str, str], ok: int, failed: int, bytes_: int, errors) -> None:
        counts = self.by_key.get(key)
        if counts is None:
            counts = self.by_key[key] = [0, 0, 0]
        counts[0] += ok
        counts[1] += failed
        counts[2] += bytes_
        if errors and key[0] == REQUEST:
            for error, count in errors.items():
                error_key = (key[1], key[2], error)
                self.errors[error_key] = self.errors.get(error_key, 0) + count

    def requests(self) -> tuple[int, int]:
        """(ok, failed) over every request series."""
        ok = failed = 0
        for (kind, _type, _name), counts in self.by_key.items():
            if kind == REQUEST:
                ok += counts[0]
                failed += counts[1]
        return ok, failed


def merge_series(into: dict, series: dict) -> None:
    """Add each of `series` ((kind, type, name) -> a series) into `into`'s `MergedSeries` of its key."""
    for key, one in series.items():
        merged = into.get(key)
        if merged is None:
            merged = into[key] = MergedSeries(*key)
        merged.merge(one)


class MinuteRollup:
    """Written intervals summed per minute of the run, each minute written once, as one line.

    Minutes are counted from the first interval's start. A minute's series are
    counts (`MergedSeries`): adding an interval is a slice addition per key,
    encoding happens once a minute, and so does adding the minute into `done`.
    """

    def __init__(self, out, done: dict):
        self.out = out  # a text file: one JSON line per minute
        self.done = done  # (kind, type, name) -> `MergedSeries`: the written minutes, merged
        self.anchor: float | None = None  # the first interval's start
        self.minute: int | None = None  # the open minute, counted from the anchor
        self.start = self.end = 0.0
        self.users: int | None = None
        self.series: dict[tuple[str, str, str], MergedSeries] = {}

    def add(self, interval: Interval) -> bool:
        """Add a written interval; True when it closed the open minute, written now (flush the file)."""
        if self.anchor is None:
            self.anchor = interval.start
        minute = int((interval.start - self.anchor) // MINUTE_SECONDS)
        closed = False
        if self.minute is not None and minute > self.minute:
            closed = self.write()
        if self.minute is None:
            self.minute, self.start, self.end = minute, interval.start, interval.end
        # An interval out of time order (late data) joins the open minute, as a reader's bucket takes it.
        self.end = max(self.end, interval.end)
        if interval.users is not None:
            self.users = interval.users
        merge_series(self.series, interval.series)
        return closed

    def write(self) -> bool:
        """Write the open minute (the last one may be partial); False when none is open."""
        if self.minute is None:
            return False
        line = {"start": self.start, "end": self.end}
        if self.users is not None:
            line["users"] = self.users
        line["series"] = [one.to_json() for one in self.series.values()]
        merge_series(self.done, self.series)
        for one in self.series.values():
            one.release()
        self.minute, self.users, self.series = None, None, {}
        write_interval(self.out, line)
        return True


@dataclass
class MergedState:
    """What a master (or a local runner) has merged so far, for a live view; a copy, safe to keep.

    series        (kind, type, name) -> `MergedSeries`: the run so far, written
                  intervals and open ones; ``.histogram.counts`` is a standard-layout
                  counts array, ``.histogram.percentiles_ms([50, 99])`` reads it
    last_second   the last interval written to metrics.jsonl ((kind, type, name) ->
                  `MergedSeries`), None before the first
    last_start    that interval's start (epoch seconds)
    totals        (kind, type, name) -> [ok, failed, bytes] over the run so far
    worker_shares worker id -> requests it reported (a master's; {} locally)
    """

    series: dict
    last_second: dict | None
    last_start: float | None
    totals: dict
    worker_shares: dict = field(default_factory=dict)


class IntervalStore:
    """Open intervals by start; `flush(now)` writes those older than `settle` seconds to `out`,
    and each minute of them to `minutes_out` (when given) once it is over."""

    def __init__(self, out, settle: float = 0.0, minutes_out=None):
        self.out = out  # a text file: one JSON line per interval
        self.settle = settle
        self.open: dict[float, Interval] = {}
        self.written_until = float("-inf")  # end of the last written interval
        self.totals = Totals()
        self.late = 0  # series that arrived after their interval was written
        # The written intervals' series, merged; with minutes, those of the written minutes (the open
        # minute's are in `minutes.series`).
        self.written: dict[tuple[str, str, str], MergedSeries] = {}
        self.minutes = MinuteRollup(minutes_out, self.written) if minutes_out is not None else None
        self.last_written: Interval | None = None

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

    def add_json(self, start: float, end: float, series: list[dict]) -> int:
        """Add series as a worker sent them (`Series.to_json`); returns their requests (ok + failed).

        HistogramError if a histogram is not one (that series' counts are not added)."""
        if not series:
            return 0
        interval = self._interval(start, end)
        add_counts = self.totals.add_counts
        requests = 0
        for data in series:
            key = (data["kind"], data["type"], data["name"])
            interval.add_json(key, data)
            ok, failed = int(data.get("ok", 0)), int(data.get("failed", 0))
            add_counts(key, ok, failed, int(data.get("bytes", 0)), data.get("errors"))
            if key[0] == REQUEST:
                requests += ok + failed
        return requests

    def merged(self) -> dict[tuple[str, str, str], MergedSeries]:
        """Every series of the run so far, written or still open, merged per key (new objects)."""
        merged: dict[tuple[str, str, str], MergedSeries] = {}
        minute = [self.minutes.series] if self.minutes is not None else []
        for source in [self.written, *minute, *(interval.series for interval in self.open.values())]:
            merge_series(merged, source)
        return merged

    def set_users(self, start: float, end: float, users: int) -> None:
        if start >= self.written_until:
            self._interval(start, end).users = users

    def flush(self, now: float | None = None) -> int:
        """Write settled intervals (all of them, and the last minute, when `now` is None: the run's end);
        returns how many."""
        starts = sorted(self.open)
        written = 0
        minutes = self.minutes
        minute_written = False
        for start in starts:
            interval = self.open[start]
            if now is not None and interval.end > now - self.settle:
                break
            write_interval(self.out, interval.to_json())
            self.written_until = max(self.written_until, interval.end)
            del self.open[start]
            written += 1
            if minutes is not None and minutes.add(interval):
                minute_written = True
            self._keep(interval)
        if written:
            flush_lines(self.out)  # ResultsError on a full disk: the lines before stay readable
        if minutes is not None:
            if now is None and minutes.write():
                minute_written = True
            if minute_written:
                flush_lines(minutes.out)
        return written

    def state(self, worker_shares: dict | None = None) -> MergedState:
        """A copy of what is merged so far (`MergedState`); costs a merge per key and open interval."""
        last = self.last_written
        return MergedState(
            series=self.merged(),
            last_second={key: MergedSeries.of_series(one) for key, one in last.series.items()} if last else None,
            last_start=last.start if last is not None else None,
            totals={key: list(counts) for key, counts in self.totals.by_key.items()},
            worker_shares=dict(worker_shares or {}),
        )

    def _keep(self, interval: Interval) -> None:
        """A written interval's series into the run's merged ones (what `merged()` starts from), unless
        its minute took them."""
        if self.last_written is not None:
            for series in self.last_written.series.values():
                if isinstance(series, MergedSeries):
                    series.release()
        self.last_written = interval
        if self.minutes is not None:
            return
        merge_series(self.written, interval.series)
