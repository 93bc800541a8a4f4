"""The one reader policy: take what can be read, skip what is damaged, say what was skipped.

A killed run, a full disk or a stray write leaves a file with a cut last
line, random bytes or values of the wrong type. Readers never stop on them:
each damaged line is skipped and counted, and the caller gets what could be
read plus `Notes` ("metrics.jsonl: 1 damaged line skipped (line 812)") that
the report and the verdict table both show.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from loadkit.errors import LoadkitError

NUMBERED = 5  # damaged lines named by number in a note; the rest are counted


class ResultsError(LoadkitError):
    """A results folder, or a file of it, that cannot be made, written or read at all."""


class Notes:
    """What readers skipped or could not read, one line per file for people."""

    def __init__(self):
        self._damaged: dict[str, list[int]] = {}
        self._other: list[str] = []

    def damaged(self, name: str, line: int) -> None:
        self._damaged.setdefault(name, []).append(line)

    def add(self, text: str) -> None:
        if text not in self._other:
            self._other.append(text)

    def damaged_lines(self, name: str) -> int:
        return len(self._damaged.get(name, ()))

    def lines(self) -> list[str]:
        said = []
        for name, numbers in self._damaged.items():
            count = len(numbers)
            shown = ", ".join(str(n) for n in numbers[:NUMBERED]) + (", ..." if count > NUMBERED else "")
            where = f"line {shown}" if count == 1 else f"lines {shown}"
            said.append(f"{name}: {count} damaged {'line' if count == 1 else 'lines'} skipped ({where})")
        return said + self._other

    def __bool__(self) -> bool:
        return bool(self._damaged or self._other)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def json_lines(path: Path, notes: Notes, valid, progress=None):
    """(line number, record) for each line `valid(record)` accepts; the others are damaged.

    `valid` returns the record to yield (it may convert it) or None; any
    exception it raises also marks the line damaged. ``progress(fraction)`` is
    called now and then with the share of the file read.
    """
    name = path.name
    try:
        handle = path.open("rb")
    except OSError as error:
        notes.add(f"cannot read {name}: {error.strerror or error}")
        return
    with handle:
        size = max(os.fstat(handle.fileno()).st_size, 1)
        done = 0
        next_report = 0.0
        for number, line in enumerate(handle, start=1):
            if progress is not None:
                done += len(line)
                if done / size >= next_report:
                    progress(done / size)
                    next_report += 0.02
            if not line.strip():
                continue
            try:
                record = valid(json.loads(line))
            except Exception:  # noqa: BLE001 - whatever is wrong with a line, it is one damaged line
                record = None
            if record is None:
                notes.damaged(name, number)
                continue
            yield number, record
    if progress is not None:
        progress(1.0)


def read_json_object(path: Path, notes: Notes) -> dict | None:
    """A file holding one JSON object; None (and a note) when it is missing, or a note when it is damaged."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes())
    except OSError as error:
        notes.add(f"cannot read {path.name}: {error.strerror or error}")
        return None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        notes.add(f"cannot read {path.name}: damaged ({error})")
        return None
    if not isinstance(data, dict):
        notes.add(f"cannot read {path.name}: not a JSON object")
        return None
    return data


def cannot_write(path, error: OSError) -> ResultsError:
    """The one line for a results file that could not be written (a full disk, a quota, a removed folder)."""
    return ResultsError(f"cannot write {path}: {error.strerror or error}")


def flush_lines(out) -> None:
    """Flush a results file written line by line; ResultsError (one line) when it cannot be.

    What was flushed before stays readable: at worst the last line is cut,
    which every reader skips as one damaged line.
    """
    try:
        out.flush()
    except OSError as error:
        raise cannot_write(getattr(out, "name", "a results file"), error) from None


def close_quietly(out) -> None:
    """Close a results file after a failed write: its unwritten buffer cannot be saved either."""
    try:
        out.close()
    except OSError:
        try:  # the buffer is dropped with the file descriptor
            os.close(out.fileno())
        except (OSError, ValueError):
            pass


def write_json_atomically(path: Path, record, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write a JSON file whole or not at all: readers never see half of it.

    Raises ResultsError (one line) when it cannot be written; no temporary file is left.
    """
    path = Path(path)
    temporary = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(json.dumps(record, indent=indent, sort_keys=sort_keys) + "\n")
        os.replace(temporary, path)
    except OSError as error:
        try:
            temporary.unlink()
        except OSError:
            pass
        raise ResultsError(f"cannot write {path}: {error.strerror or error}") from None
    return path
