"""A target's state folder: ``instance.json`` and the files of the sink it starts.

``instance.json`` (written by ``loadkit target NAME up``, read by ``status``,
``down`` and the end-to-end code)::

    {"server": "postfix", "running": true, "state_dir": "...", "port": 2525,
     "started_at": 1795652195.0, ...endpoints and paths of that server...,
     "sink": {"url": "smtp://127.0.0.1:40001", "trace_log": ".../traces.log", ...}}

The sink (``loadkit sink --stats-json``) writes its counters to
``stats.json`` when it stops, its trace log to ``traces.log`` and its
output to ``sink.log``.
"""

from __future__ import annotations

from pathlib import Path

from loadkit.results._lines import Notes, ResultsError, read_json_object, write_json_atomically
from loadkit.results._names import INSTANCE_FILE, SINK_LOG_FILE, SINK_STATS_FILE, TRACE_LOG_FILE


def instance_path(state_dir: Path) -> Path:
    return Path(state_dir) / INSTANCE_FILE


def write_instance(state_dir: Path, record: dict) -> Path:
    return write_json_atomically(instance_path(state_dir), record)


def read_instance(state_dir: Path) -> dict | None:
    """instance.json as a dict; None when there is none; ResultsError (one line) when it is damaged."""
    path = instance_path(state_dir)
    if not path.exists():
        return None
    notes = Notes()
    info = read_json_object(path, notes)
    if info is None:
        raise ResultsError(f"{path}: {'; '.join(notes.lines()) or 'unreadable'}")
    return info


def instance_sink(state_dir: Path) -> dict:
    """The ``sink`` part of an instance.json ({} when there is none or it is not an object)."""
    try:
        info = read_instance(state_dir)
    except ResultsError:
        return {}
    sink = (info or {}).get("sink")
    return sink if isinstance(sink, dict) else {}


def sink_files(folder: Path) -> tuple[Path, Path, Path]:
    """(stats.json, traces.log, sink.log) of a sink started in `folder`."""
    folder = Path(folder)
    return folder / SINK_STATS_FILE, folder / TRACE_LOG_FILE, folder / SINK_LOG_FILE


def write_sink_stats(path: Path, record: dict) -> Path:
    return write_json_atomically(Path(path), record)


def read_sink_stats(path: Path) -> dict | None:
    """The sink's counters; None when it has not written them (yet) or they are damaged."""
    return read_json_object(Path(path), Notes())
