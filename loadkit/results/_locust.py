"""Locust's own files: ``--csv PREFIX`` (written by Locust or by `loadkit.metrics.LocustCsv`)
and ``--json-file NAME``, and how a RESULTS argument names one of them.

``--csv PREFIX`` writes ``PREFIX_stats.csv``, ``PREFIX_stats_history.csv``,
``PREFIX_failures.csv`` and ``PREFIX_exceptions.csv``; a loadkit run puts
them in its results folder with the prefix ``locust``. ``--json-file NAME``
writes ``NAME.json``: a list of one object per request type and name.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from loadkit.results._lines import Notes, ResultsError
from loadkit.results._names import (
    CSV_PREFIX,
    HISTORY_SUFFIX,
    METRICS_FILE,
    RUN_FILE,
    STATS_SUFFIX,
    VERDICTS_FILE,
)

JSON_ENTRY_KEYS = ("name", "method", "num_requests", "num_failures")


def csv_path(prefix: str | Path, suffix: str) -> Path:
    """One of Locust's CSV files of a prefix (suffix: STATS_SUFFIX, HISTORY_SUFFIX, ...)."""
    return Path(f"{prefix}{suffix}")


def find_prefix(results: str | Path) -> Path:
    """The ``--csv`` prefix of a results folder, of a prefix, or of a ``*_stats.csv`` path."""
    path = Path(results)
    if path.is_dir():
        candidates = sorted(p for p in path.glob("*" + STATS_SUFFIX) if not p.name.endswith(HISTORY_SUFFIX))
        if not candidates:
            raise ResultsError(f"no *{STATS_SUFFIX} in {path}: is it a folder written with locust --csv?")
        preferred = path / (CSV_PREFIX + STATS_SUFFIX)
        if preferred in candidates:
            return path / CSV_PREFIX
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            example = path / candidates[0].name[: -len(STATS_SUFFIX)]
            raise ResultsError(f"several stats files in {path} ({names}): pass the prefix, e.g. {example}")
        return path / candidates[0].name[: -len(STATS_SUFFIX)]
    if path.name.endswith(STATS_SUFFIX) and path.is_file():
        return path.with_name(path.name[: -len(STATS_SUFFIX)])
    if csv_path(path, STATS_SUFFIX).is_file():
        return path
    raise ResultsError(f"no such results folder or --csv prefix: {path}")


def read_locust_csv(path: Path, notes: Notes) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of one Locust CSV, every cell as text; None when the file is missing,
    an empty header when it is empty. A row longer than the header is damaged."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = [row for row in csv.reader(handle) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ResultsError(f"cannot read {path}: {error}") from None
    if not lines:
        return [], []
    header, rows = lines[0], []
    for number, row in enumerate(lines[1:], start=2):
        if len(row) > len(header):
            notes.damaged(path.name, number)
            continue
        rows.append(row + [""] * (len(header) - len(row)))
    return header, rows


def looks_like_locust_json(path: Path) -> bool:
    """True for a JSON file whose top level is a list of Locust stats entries (or is empty)."""
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(4096).lstrip()
    except OSError:
        return False
    return head.startswith(b"[") and (head.rstrip() in (b"[", b"[]") or b'"num_requests"' in head or b'"method"' in head)


def read_locust_json(path: str | Path) -> list[dict]:
    """The entries of a ``--json-file`` output; ResultsError when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise ResultsError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) and all(k in e for k in JSON_ENTRY_KEYS) for e in data):
        raise ResultsError(f"{path} is not Locust's JSON stats (locust --json-file): expected a list of entries")
    return data


def _locust_json_in(folder: Path) -> Path | None:
    skip = {RUN_FILE, VERDICTS_FILE}
    candidates = [p for p in sorted(folder.glob("*.json")) if p.name not in skip and looks_like_locust_json(p)]
    return candidates[0] if len(candidates) == 1 else None


def locate(results: str | Path) -> tuple[str, Path]:
    """What a RESULTS argument is, without reading it: ("json", file), ("metrics", folder)
    or ("csv", prefix). ResultsError (one line) when nothing readable is there."""
    path = Path(results)
    if path.is_file() and path.name == METRICS_FILE:
        path = path.parent
    if path.is_file() and path.suffix == ".json" and path.name != RUN_FILE:
        return "json", path
    if path.is_dir() and (path / METRICS_FILE).is_file():
        return "metrics", path
    if not path.is_dir() and Path(f"{path}.json").is_file() and not csv_path(path, STATS_SUFFIX).is_file():
        return "json", Path(f"{path}.json")  # the NAME given to --json-file
    if path.is_dir() and not any(p for p in path.glob("*" + STATS_SUFFIX) if not p.name.endswith(HISTORY_SUFFIX)):
        found = _locust_json_in(path)
        if found is None:
            raise ResultsError(
                f"no {METRICS_FILE}, *{STATS_SUFFIX} or Locust JSON stats in {path}: "
                "is it a results folder, or a folder written with locust --csv?"
            )
        return "json", found
    return "csv", find_prefix(path)


def results_folder_of(kind: str, path: Path) -> Path:
    """The folder beside a located run's files (where run.json, events.jsonl... would be)."""
    return path if kind == "metrics" else path.parent
