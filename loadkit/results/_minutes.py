"""metrics-minute.jsonl: metrics.jsonl summed per minute, what readers of long runs read instead.

The same line format as metrics.jsonl (`_metrics`); each line is the exact
merge of one minute's intervals, minutes counted from the run's first
interval's start:

    start    the minute's first interval's start
    end      its last interval's end
    users    its last interval's users (absent when none of them had any)
    series   one per (kind, type, name): ok, failed, bytes and errors summed,
             histograms merged (counts added, bucket by bucket)

So whatever a reader makes of intervals grouped into buckets of whole
minutes from the run's first start (totals, whole-run percentiles, a chart
point of three minutes), it makes the same of these lines, with sixty times
fewer histograms to decode. A 24-hour run has 1,440 lines.

The process that writes metrics.jsonl writes this file too
(`loadkit.metrics.IntervalStore`): a minute once its last interval is
written, the last, partial one when the run stops. A run cut short leaves it
behind metrics.jsonl, so a reader takes it only when it covers the same span
(`minutes_cover`: its first start and last end are metrics.jsonl's) and
none of its lines is damaged; otherwise it reads metrics.jsonl, as it does
for folders written before this file existed.

Which runs are read from their minutes (`reads_minutes`): those longer than
ten hours, where the report's charts have buckets of several minutes anyway;
`loadkit report` and `loadkit check` follow the same rule, so they read the
same file of a folder. metrics.jsonl itself is then read only at its two
ends: a line damaged in its middle is not looked for.
"""

from __future__ import annotations

from pathlib import Path

from loadkit.results._lines import Notes, cannot_write, json_lines
from loadkit.results._metrics import first_and_last_lines, interval_checker
from loadkit.results._names import MINUTES_FILE

MINUTE_SECONDS = 60
LONG_RUN_SECONDS = 10 * 3600  # longer runs are read from their minutes


def open_minutes(folder: Path):
    """The file the minute writer appends to; ResultsError (one line) when it cannot be made.
    Its lines are written with `write_interval`, as metrics.jsonl's."""
    path = Path(folder) / MINUTES_FILE
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as error:
        raise cannot_write(path, error) from None


def reads_minutes(span: float) -> bool:
    """Whether a run of `span` seconds (metrics.jsonl's first start to its last end) is one to read
    from its minutes, when they cover it."""
    return span > LONG_RUN_SECONDS


def minutes_cover(folder: Path, first: dict, last: dict) -> bool:
    """Whether metrics-minute.jsonl spans what metrics.jsonl spans, from `first`'s start to `last`'s end
    (reading only its two ends). False when it is missing or holds no sound line."""
    path = Path(folder) / MINUTES_FILE
    try:
        minute_first, minute_last = first_and_last_lines(path)
    except OSError:
        return False
    if minute_first is None:
        return False
    return float(minute_first["start"]) == float(first["start"]) and _end(minute_last) == _end(last)


def measure_minutes(folder: Path, first: dict | None, last: dict | None, measure, decode=None, progress=None):
    """``measure(records)`` of metrics-minute.jsonl ((line number, minute) in file order) when the run
    whose metrics.jsonl begins with `first` and ends with `last` is read from its minutes: longer than
    ten hours, covered, and every line sound. None otherwise: then read metrics.jsonl."""
    if first is None or not reads_minutes(_end(last) - float(first["start"])) or not minutes_cover(folder, first, last):
        return None
    damage = Notes()
    measured = measure(read_minutes(folder, damage, decode, progress))
    return None if damage else measured


def read_minutes(folder: Path, notes: Notes, decode=None, progress=None):
    """(line number, minute) for every sound line of metrics-minute.jsonl, in file order; damaged
    lines are said in `notes`, as `read_intervals` does."""
    return json_lines(Path(folder) / MINUTES_FILE, notes, interval_checker(decode), progress)


def _end(interval: dict) -> float:
    return float(interval.get("end", interval["start"] + 1))
