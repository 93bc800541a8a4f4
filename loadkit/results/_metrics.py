"""metrics.jsonl: one JSON object per interval, written in time order once settled.

    {"start": 1795652195.0, "end": 1795652196.0, "users": 10,
     "series": [{"kind": "request", "type": "SMTP", "name": "send",
                 "ok": 40, "failed": 1, "bytes": 204800,
                 "errors": {"550 5.1.1 at RCPT": 1},
                 "histogram": "HISTFAAA...", "failed_histogram": "HISTFAAA..."}, ...]}

``start``/``end`` are epoch seconds (whole seconds on every process, so
intervals of a distributed run line up); ``users`` is optional; ``kind`` is
"request" or "phase"; ``histogram`` is an HdrHistogram of µs in its V2
compressed text form: for a request, of the accepted ones only, the failed
ones being in the optional ``failed_histogram`` (files written before the
split have none, and their ``histogram`` holds both). A line is damaged when it is not such an object, a
count is not a whole number, or a histogram does not decode.
"""

from __future__ import annotations

import json
from pathlib import Path

from loadkit.results._lines import Notes, cannot_write, is_number, json_lines
from loadkit.results._names import METRICS_FILE

TAIL_BYTES = 1 << 16
TEXT_KEYS = ("kind", "type", "name")
COUNT_KEYS = ("ok", "failed", "bytes")
HISTOGRAM_KEYS = ("histogram", "failed_histogram")


def open_metrics(folder: Path):
    """The file the interval writer appends to; ResultsError (one line) when it cannot be made."""
    path = Path(folder) / METRICS_FILE
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as error:
        raise cannot_write(path, error) from None


def write_interval(out, interval: dict) -> None:
    """One interval's line; ResultsError (one line) when it cannot be written. Flush with `flush_lines`."""
    try:
        out.write(json.dumps(interval, separators=(",", ":")) + "\n")
    except OSError as error:
        raise cannot_write(getattr(out, "name", METRICS_FILE), error) from None


def interval_checker(decode=None):
    """A `valid` for `json_lines`: the interval with its numbers checked and, given
    `decode`, each series' histogram decoded (a histogram that does not decode is damage).

    It runs for every series of every interval (864,000 of them in a day at one
    interval a second), so its checks are written out rather than called.
    """

    def valid(record):
        if not isinstance(record, dict) or not is_number(record.get("start")):
            return None
        if "end" in record and not is_number(record["end"]):
            return None
        if "users" in record and record["users"] is not None and not is_number(record["users"]):
            return None
        series = record.get("series", [])
        if not isinstance(series, list):
            return None
        for entry in series:
            if not isinstance(entry, dict):
                return None
            for key in TEXT_KEYS:
                if key in entry and not isinstance(entry[key], str):
                    return None
            for key in COUNT_KEYS:
                if key in entry:
                    count = entry[key]
                    # is_count, inlined: JSON's whole numbers are ints, never an int subclass but bool
                    if type(count) is not int or count < 0:
                        return None
            if "errors" in entry:
                errors = entry["errors"]
                if not isinstance(errors, dict):
                    return None
                for count in errors.values():
                    if type(count) is not int or count < 0:
                        return None
            if decode is not None:
                for key in HISTOGRAM_KEYS:
                    encoded = entry.get(key)
                    if encoded:
                        if not isinstance(encoded, str):
                            return None
                        entry[key] = decode(encoded)
            else:
                for key in HISTOGRAM_KEYS:
                    encoded = entry.get(key)
                    if encoded and not isinstance(encoded, str):
                        return None
        return record

    return valid


def read_intervals(folder: Path, notes: Notes, decode=None, progress=None):
    """(line number, interval) for every sound line of metrics.jsonl, in file order."""
    return json_lines(Path(folder) / METRICS_FILE, notes, interval_checker(decode), progress)


def first_and_last_intervals(folder: Path, decode=None) -> tuple[dict | None, dict | None]:
    """The first and last sound intervals, reading only the file's two ends (damage is said
    by the full read that follows)."""
    return first_and_last_lines(Path(folder) / METRICS_FILE, decode)


def first_and_last_lines(path: Path, decode=None) -> tuple[dict | None, dict | None]:
    """`first_and_last_intervals` of any file in metrics.jsonl's format."""
    valid = interval_checker(decode)

    def parse(line: bytes):
        if not line.strip():
            return None
        try:
            return valid(json.loads(line))
        except Exception:  # noqa: BLE001 - a damaged line is skipped
            return None

    first = last = None
    with path.open("rb") as handle:
        for line in handle:
            first = parse(line)
            if first is not None:
                break
        if first is None:
            return None, None
        size = handle.seek(0, 2)
        chunk = TAIL_BYTES
        while True:
            handle.seek(max(size - chunk, 0))
            lines = handle.read().splitlines()
            # The first line of a chunk may be cut: trust it only when the chunk is the whole file.
            complete = lines if size <= chunk else lines[1:]
            for line in reversed(complete):
                last = parse(line)
                if last is not None:
                    return first, last
            if size <= chunk:
                return first, first
            chunk *= 4
