"""What probes and end-to-end delivery add to a results folder.

- ``e2e.json`` (one object, see `loadkit.e2e`): accepted, delivered, lost,
  duplicated, unexpected, ``latency_histogram`` (HdrHistogram of µs),
  ``latency_ms``, ``drain``, clock offsets; written whole or not at all.
- ``probes.jsonl``: one row per probe per second,
  ``{"time": epoch, "probe": "postfix", "active": 3, ...}``, or
  ``{"time": ..., "probe": ..., "error": "..."}`` once when a probe fails.
- ``postfix_log.json`` (one object): Postfix's status counts and delays.
"""

from __future__ import annotations

import json
from pathlib import Path

from loadkit.results._lines import Notes, is_number, json_lines, read_json_object, write_json_atomically
from loadkit.results._names import E2E_FILE, POSTFIX_LOG_FILE, PROBES_FILE


def write_e2e(folder: Path, record: dict) -> Path:
    return write_json_atomically(Path(folder) / E2E_FILE, record)


def read_e2e(folder: Path, notes: Notes) -> dict | None:
    return read_json_object(Path(folder) / E2E_FILE, notes)


def write_postfix_log(folder: Path, summary: dict) -> Path:
    return write_json_atomically(Path(folder) / POSTFIX_LOG_FILE, summary)


def read_postfix_log(folder: Path, notes: Notes) -> dict | None:
    return read_json_object(Path(folder) / POSTFIX_LOG_FILE, notes)


def probes_path(folder: Path) -> Path:
    return Path(folder) / PROBES_FILE


def open_probes(folder: Path):
    """The file the probe sampler appends its rows to."""
    return open(probes_path(folder), "a", encoding="utf-8")


def write_probe_row(out, row: dict) -> None:
    out.write(json.dumps(row, separators=(",", ":")) + "\n")


def _probe_row(record):
    if not isinstance(record, dict) or not is_number(record.get("time")) or not isinstance(record.get("probe"), str):
        return None
    return record


def read_probes(folder: Path, notes: Notes) -> list[dict] | None:
    """Sound rows, in file order; None without the file."""
    path = probes_path(folder)
    if not path.is_file():
        return None
    return [row for _number, row in json_lines(path, notes, _probe_row)]
