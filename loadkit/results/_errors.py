"""errors.csv: one row per (request type, name, error key), the most frequent first.

    type,name,error,phase,code,count,example
    SMTP,send,550 5.1.1 at RCPT,rcpt,550,12,550 5.1.1 <nobody@example.test>: Recipient address rejected

``error`` is the grouping key, ``example`` one full text of it, as the server said it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from loadkit.results._lines import Notes, cannot_write
from loadkit.results._names import ERRORS_FILE

ERRORS_COLUMNS = ("type", "name", "error", "phase", "code", "count", "example")


def write_errors(folder: Path, rows) -> Path:
    """`rows`: tuples in ERRORS_COLUMNS order; ResultsError (one line) when the file cannot be written."""
    path = Path(folder) / ERRORS_FILE
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(ERRORS_COLUMNS)
            out.writerows(rows)
    except OSError as error:
        raise cannot_write(path, error) from None
    return path


def read_errors(folder: Path, notes: Notes) -> list[dict] | None:
    """Rows as {column: text} ("" for a missing cell); None without the file."""
    path = Path(folder) / ERRORS_FILE
    if not path.is_file():
        return None
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error) as error:
        notes.add(f"cannot read {ERRORS_FILE}: {error}")
        return None
    return [{column: (row.get(column) or "") for column in ERRORS_COLUMNS} for row in rows]
