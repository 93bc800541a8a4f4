"""events.jsonl: integrity events as they happen, and what a reader derives from the folder.

    {"time": 1795652205.1, "kind": "worker_missing", "worker": "c0ffee...", "detail": "no heartbeat for 3 seconds"}

``time`` is epoch seconds, ``worker`` a worker's id or null, ``kind`` one of
the kinds below (what each means: `loadkit.metrics._integrity`, which
records them). A line is damaged when it is not such an object.

One fact is derived, never written: a run is incomplete when its folder
has no run.json (written last) or its events.jsonl has no run_stopped
(written when the recording stops). A run killed with SIGKILL, or whose
disk filled up, leaves exactly that.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from loadkit.results._lines import Notes, cannot_write, flush_lines, is_number, json_lines
from loadkit.results._names import EVENTS_FILE, METRICS_FILE, RUN_FILE

RUN_STARTED = "run_started"
RUN_STOPPED = "run_stopped"  # its absence makes a run incomplete
WORKER_JOINED = "worker_joined"
WORKER_MISSING = "worker_missing"
WORKER_RECOVERED = "worker_recovered"
WORKER_LOST = "worker_lost"
WORKER_QUIT = "worker_quit"
FINAL_REPORT_MISSING = "final_report_missing"  # a worker alive at the end whose last report never came
GENERATOR_CPU_HIGH = "generator_cpu_high"  # Locust's cpu_warning, on the master, a worker or a local runner
HOST_CPU_SATURATED = "host_cpu_saturated"  # the host probe: every core busy for seconds
CPU_HIGH = "cpu_high"  # what runs recorded before generator_cpu_high; still read
COUNT_MISMATCH = "count_mismatch"
LATE_DATA = "late_data"
RUN_INCOMPLETE = "run_incomplete"  # derived by the reader, see `incomplete_run`
# Not a doubt about the numbers but a cause of what they do next: the sink's faults were changed
# through its control port (detail: what is in force now); the report marks the moment on its time charts.
SINK_CHANGED = "sink_changed"


def open_events(folder: Path):
    """The file the integrity log appends to; ResultsError (one line) when it cannot be made."""
    path = Path(folder) / EVENTS_FILE
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as error:
        raise cannot_write(path, error) from None


def write_event(out, kind: str, worker: str | None = None, detail: str = "", at: float | None = None) -> None:
    """One event's line, flushed at once (a run killed later still has it); ResultsError when it cannot be."""
    line = {"time": time.time() if at is None else at, "kind": kind, "worker": worker, "detail": detail}
    try:
        out.write(json.dumps(line) + "\n")
    except OSError as error:
        raise cannot_write(getattr(out, "name", EVENTS_FILE), error) from None
    flush_lines(out)


def _event(record):
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        return None
    if "time" in record and record["time"] is not None and not is_number(record["time"]):
        return None
    return record


def read_events(folder: Path, notes: Notes) -> list[dict] | None:
    """The sound events, in file order; None when the folder has no events.jsonl."""
    path = Path(folder) / EVENTS_FILE
    if not path.is_file():
        return None
    return [event for _number, event in json_lines(path, notes, _event)]


def is_loadkit_run(folder: Path) -> bool:
    """A folder loadkit recorded (not a plain Locust --csv or --json-file run)."""
    folder = Path(folder)
    return (folder / METRICS_FILE).is_file() or (folder / EVENTS_FILE).is_file()


def incomplete_run(folder: Path, events: list[dict] | None, notes: Notes | None = None) -> dict | None:
    """The run_incomplete event of a loadkit run that never finished, else None.

    `events` as `read_events` returned them. Plain Locust runs are not judged:
    nothing in them says whether they finished.
    """
    folder = Path(folder)
    if not is_loadkit_run(folder):
        return None
    missing = []
    if not (folder / RUN_FILE).is_file():
        missing.append(f"no {RUN_FILE}")
    if events is not None and not any(event.get("kind") == RUN_STOPPED for event in events):
        damaged = notes.damaged_lines(EVENTS_FILE) if notes is not None else 0
        missing.append(f"no {RUN_STOPPED} event in {EVENTS_FILE}" + (f" ({damaged} damaged lines)" if damaged else ""))
    if not missing:
        return None
    times = [event["time"] for event in events or () if is_number(event.get("time"))]
    return {
        "time": max(times) if times else None,
        "kind": RUN_INCOMPLETE,
        "worker": None,
        "detail": f"{' and '.join(missing)}: the run was killed or stopped recording before its end; "
                  "its last seconds and totals may be missing",
    }
