"""Read a results folder: Locust's CSV files and run.json, as pandas DataFrames.

Locust's ``--csv PREFIX`` writes ``PREFIX_stats.csv``, ``PREFIX_stats_history.csv``,
``PREFIX_failures.csv`` and ``PREFIX_exceptions.csv``. A loadkit run puts them
in a results folder with the prefix ``locust`` and may add ``run.json``.

Every CSV is read as text first and only known numeric columns are converted:
a request named "NA" or "null" stays a name, and Locust's "N/A" (an empty
percentile early in a run) becomes NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from loadkit import results as files
from loadkit.errors import LoadkitError
from loadkit.results import EXCEPTIONS_SUFFIX, FAILURES_SUFFIX, HISTORY_SUFFIX, STATS_SUFFIX, Notes, ResultsError

AGGREGATED = "Aggregated"

# Columns that hold text; every other column of the stats files is a number.
TEXT_COLUMNS = frozenset({"Type", "Name", "Method", "Error", "Message", "Traceback", "Nodes", "First Seen", "Last Seen"})
STATS_REQUIRED = ("Type", "Name", "Request Count", "Failure Count")
HISTORY_REQUIRED = ("Timestamp", "Type", "Name")
FAILURES_COLUMNS = ("Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen")
EXCEPTIONS_COLUMNS = ("Count", "Message", "Traceback", "Nodes")


class ReportError(LoadkitError):
    """Results that cannot be turned into a report; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))


@dataclass
class Results:
    """Everything a report is built from. Optional files load as empty frames."""

    prefix: Path
    stats: pd.DataFrame
    history: pd.DataFrame
    failures: pd.DataFrame
    exceptions: pd.DataFrame
    metadata: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # shown on the page, did not stop it

    @property
    def folder(self) -> Path:
        return self.prefix.parent


def find_prefix(results: str | Path) -> Path:
    """The ``--csv`` prefix of a results folder, of a prefix, or of a ``*_stats.csv`` path."""
    try:
        return files.find_prefix(results)
    except ResultsError as error:
        raise ReportError(str(error)) from None


def _read_csv(path: Path, required: tuple[str, ...] = (), columns: tuple[str, ...] = (),
              notes: Notes | None = None) -> pd.DataFrame:
    """One Locust CSV, text columns as str and the rest as numbers (NaN for "N/A")."""
    try:
        table = files.read_locust_csv(path, notes if notes is not None else Notes())
    except ResultsError as error:
        raise ReportError(str(error)) from None
    header, rows = table if table else ([], [])
    if not header:
        # Locust was stopped before it wrote even the header row.
        frame = pd.DataFrame(columns=list(columns or required), dtype=str)
    else:
        frame = pd.DataFrame(rows, columns=header, dtype=str)
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ReportError(f"{path} has no column {missing[0]!r}: not a CSV file written by locust --csv")
    for name in frame.columns:
        if name not in TEXT_COLUMNS:
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def _is_aggregated(frame: pd.DataFrame) -> pd.Series:
    # Locust's total row has an empty Type; a request of its own could be named "Aggregated".
    return (frame["Name"] == AGGREGATED) & (frame["Type"] == "")


def load_stats(prefix: str | Path) -> pd.DataFrame:
    """``PREFIX_stats.csv``: one row per (Type, Name), the Aggregated row last."""
    path = files.csv_path(prefix, STATS_SUFFIX)
    if not path.is_file():
        raise ReportError(f"no stats file {path}")
    frame = _read_csv(path, STATS_REQUIRED)
    total = _is_aggregated(frame)
    return pd.concat([frame[~total], frame[total]], ignore_index=True)


def load_history(prefix: str | Path) -> pd.DataFrame:
    """``PREFIX_stats_history.csv`` as written (empty when missing); Timestamp is epoch seconds."""
    path = files.csv_path(prefix, HISTORY_SUFFIX)
    if not path.is_file():
        return pd.DataFrame(columns=list(HISTORY_REQUIRED))
    return _read_csv(path, HISTORY_REQUIRED)


def load_failures(prefix: str | Path) -> pd.DataFrame:
    """``PREFIX_failures.csv``: Method, Name, Error, Occurrences (empty when missing)."""
    path = files.csv_path(prefix, FAILURES_SUFFIX)
    if not path.is_file():
        return pd.DataFrame(columns=list(FAILURES_COLUMNS))
    return _read_csv(path, FAILURES_COLUMNS[:4], FAILURES_COLUMNS)


def load_exceptions(prefix: str | Path) -> pd.DataFrame:
    """``PREFIX_exceptions.csv``: exceptions raised inside users (empty when missing)."""
    path = files.csv_path(prefix, EXCEPTIONS_SUFFIX)
    if not path.is_file():
        return pd.DataFrame(columns=list(EXCEPTIONS_COLUMNS))
    return _read_csv(path, ("Count", "Message"), EXCEPTIONS_COLUMNS)


def load_metadata(folder: str | Path) -> dict:
    """``run.json`` of a results folder, ``{}`` when there is none. Every key is optional."""
    notes = Notes()
    data = files.read_run_json(Path(folder), notes)
    if notes:
        raise ReportError("; ".join(notes.lines()))
    return data or {}


def load_results(results: str | Path) -> Results:
    """All files of a results folder (or of a ``--csv`` prefix)."""
    prefix = find_prefix(results)
    problems = []
    try:
        metadata = load_metadata(prefix.parent)
    except ReportError as error:
        # A run that crashed may leave run.json half written; its numbers are still worth a report.
        metadata = {}
        problems.append(str(error))
    return Results(
        prefix=prefix,
        stats=load_stats(prefix),
        history=load_history(prefix),
        failures=load_failures(prefix),
        exceptions=load_exceptions(prefix),
        metadata=metadata,
        problems=problems,
    )


def history_is_per_request(history: pd.DataFrame) -> bool:
    """True when Locust ran with ``--csv-full-history`` (rows for each request, not only Aggregated)."""
    return bool(len(history)) and not _is_aggregated(history).all()


def aggregated_timeline(history: pd.DataFrame) -> pd.DataFrame:
    """The Aggregated rows of a history, one per second, with rates and percentiles.

    Columns: ``timestamp`` (epoch s), ``elapsed`` (s since the first row),
    ``users``, ``requests_per_s``, ``failures_per_s``, ``p50``, ``p95``, ``p99``
    (ms, NaN where Locust wrote "N/A" or the column is absent).

    Rates come from the difference of Locust's running totals between rows:
    its own "Requests/s" column averages a window that ends 2 s before the
    write, so it reads 0 for the first seconds and lags every change.
    """
    columns = ["timestamp", "elapsed", "users", "requests_per_s", "failures_per_s", "p50", "p95", "p99"]
    if history.empty:
        return pd.DataFrame(columns=columns, dtype=float)
    rows = history[_is_aggregated(history)].dropna(subset=["Timestamp"])
    # Locust stamps each write with int(time.time()): keep the last write of a second.
    rows = rows.sort_values("Timestamp", kind="stable").drop_duplicates("Timestamp", keep="last")
    if rows.empty:
        return pd.DataFrame(columns=columns, dtype=float)

    def column(name: str) -> pd.Series:
        return rows[name].astype(float) if name in rows.columns else pd.Series(float("nan"), index=rows.index)

    timestamps = column("Timestamp")
    seconds = timestamps.diff()

    def rate(total_name: str, locust_name: str) -> pd.Series:
        if total_name not in rows.columns:
            return column(locust_name)
        added = column(total_name).diff()
        # Totals fall back to zero when stats are reset (--reset-stats, the web UI): no rate there.
        return (added / seconds).where(added >= 0)

    percentiles = {name: column(label) for name, label in (("p50", "50%"), ("p95", "95%"), ("p99", "99%"))}
    if history_is_per_request(history):
        # With --csv-full-history Locust writes 0, not "N/A", until its ~10 s window has a
        # start (about 2 s into the run). Those leading zeros mean "unknown", not "0 ms".
        highest = rows[[name for name in rows.columns if name.endswith("%")]].max(axis=1)
        warming_up = highest.fillna(0).eq(0).cummin() & highest.gt(0).any()
        for name, values in percentiles.items():
            percentiles[name] = values.mask(warming_up)

    return pd.DataFrame(
        {
            "timestamp": timestamps,
            "elapsed": timestamps - timestamps.iloc[0],
            "users": column("User Count"),
            "requests_per_s": rate("Total Request Count", "Requests/s"),
            "failures_per_s": rate("Total Failure Count", "Failures/s"),
            **percentiles,
        }
    ).reset_index(drop=True)
