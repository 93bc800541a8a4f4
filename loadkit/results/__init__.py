"""The results folder's contract: its file names, one writer and one reader per file.

A run writes one folder (``reports/<YYYYmmdd-HHMMSS>-<label>/``)::

    run.json            what ran, against what, when; written LAST        _folder
    metrics.jsonl       one interval a line: counts and HdrHistograms     _metrics
    metrics-minute.jsonl  each minute of it merged: long runs read it   _minutes
    events.jsonl        integrity events as they happen                   _events
    errors.csv          failures per (type, name, error key)              _errors
    locust_*.csv        Locust's own CSV (prefix ``locust``)              _locust
    verdicts.json       thresholds checked at the end (``--check``)       _verdicts
    junit.xml           the same verdicts for CI                          _verdicts
    e2e.json            end-to-end delivery (``loadkit.e2e``)             _server
    probes.jsonl        the server's side once a second                   _server
    postfix_log.json    Postfix's log, summed at the end                  _server
    report.html         ``loadkit report``

A reader that merges every histogram of metrics.jsonl decodes them with
`SpanDecoder` (`_histograms`): the same result as `loadkit.hdr.decode_span`,
without an array of its own for each.

and a target's state folder (``loadkit target NAME up --dir DIR``) holds
``instance.json`` and its sink's ``stats.json``, ``traces.log`` and
``sink.log`` (`_state`). Each module's docstring gives its file's format.

Every reader follows one policy (`_lines`), so ``loadkit report``,
``loadkit check``, ``loadkit report --check`` and the end-to-end code see
the same run: a missing optional file is None; a damaged line (cut short,
random bytes, invalid UTF-8, a value of the wrong type, a histogram that
does not decode) is skipped and counted, and the reader returns what it
could read plus `Notes` ("metrics.jsonl: 1 damaged line skipped (line 812)")
that the report and the verdict table show. A damaged file of one object
is a note too. Readers never raise on damage, and nothing here imports
Locust or gevent: a report is built from files alone.

Writers raise `ResultsError` (one line: "cannot write PATH: No space left
on device") when the disk is full or the file cannot be made; lines already
flushed stay readable. The recording side decides what happens then
(`loadkit.metrics.RunRecorder`: it stops writing and says so).

One fact is derived by the reader: a loadkit run with no run.json or no
run_stopped event is incomplete (`incomplete_run`).
"""

from loadkit.results._errors import ERRORS_COLUMNS, read_errors, write_errors
from loadkit.results._events import (
    RUN_INCOMPLETE,
    incomplete_run,
    is_loadkit_run,
    open_events,
    read_events,
    write_event,
)
from loadkit.results._folder import new_results_folder, read_run_json, write_run_json
from loadkit.results._histograms import SpanDecoder, histogram_from_counts
from loadkit.results._lines import (
    Notes,
    ResultsError,
    cannot_write,
    close_quietly,
    flush_lines,
    is_count,
    is_number,
    json_lines,
    write_json_atomically,
)
from loadkit.results._locust import (
    csv_path,
    find_prefix,
    locate,
    looks_like_locust_json,
    read_locust_csv,
    read_locust_json,
    results_folder_of,
)
from loadkit.results._metrics import first_and_last_intervals, open_metrics, read_intervals, write_interval
from loadkit.results._minutes import (
    MINUTE_SECONDS,
    measure_minutes,
    minutes_cover,
    open_minutes,
    read_minutes,
    reads_minutes,
)
from loadkit.results._names import (
    CSV_PREFIX,
    E2E_FILE,
    ERRORS_FILE,
    EVENTS_FILE,
    EXCEPTIONS_SUFFIX,
    FAILURES_SUFFIX,
    HISTORY_SUFFIX,
    INSTANCE_FILE,
    JUNIT_FILE,
    LOCUST_STATS_FILE,
    METRICS_FILE,
    MINUTES_FILE,
    POSTFIX_LOG_FILE,
    PROBES_FILE,
    REPORT_FILE,
    RUN_FILE,
    SINK_LOG_FILE,
    SINK_STATS_FILE,
    STATS_SUFFIX,
    TRACE_LOG_FILE,
    VERDICTS_FILE,
)
from loadkit.results._server import (
    open_probes,
    probes_path,
    read_e2e,
    read_postfix_log,
    read_probes,
    write_e2e,
    write_postfix_log,
    write_probe_row,
)
from loadkit.results._state import (
    instance_path,
    instance_sink,
    read_instance,
    read_sink_stats,
    sink_files,
    write_instance,
    write_sink_stats,
)
from loadkit.results._verdicts import read_verdicts_json, verdict_paths, write_junit, write_verdicts_json

__all__ = [
    "CSV_PREFIX", "E2E_FILE", "ERRORS_COLUMNS", "ERRORS_FILE", "EVENTS_FILE", "EXCEPTIONS_SUFFIX",
    "FAILURES_SUFFIX", "HISTORY_SUFFIX", "INSTANCE_FILE", "JUNIT_FILE", "LOCUST_STATS_FILE", "METRICS_FILE",
    "MINUTE_SECONDS", "MINUTES_FILE", "POSTFIX_LOG_FILE", "PROBES_FILE", "REPORT_FILE", "RUN_FILE", "RUN_INCOMPLETE", "SINK_LOG_FILE",
    "SINK_STATS_FILE", "STATS_SUFFIX", "TRACE_LOG_FILE", "VERDICTS_FILE",
    "Notes", "ResultsError", "SpanDecoder",
    "cannot_write", "close_quietly", "csv_path", "histogram_from_counts", "find_prefix", "flush_lines", "first_and_last_intervals", "incomplete_run", "instance_path", "instance_sink",
    "is_count", "is_loadkit_run", "is_number", "json_lines", "locate", "looks_like_locust_json",
    "measure_minutes", "minutes_cover", "new_results_folder", "open_events", "open_metrics", "open_minutes", "open_probes",
    "probes_path", "read_e2e",
    "read_errors", "read_events", "read_instance", "read_intervals", "read_locust_csv", "read_locust_json",
    "read_minutes", "reads_minutes", "read_postfix_log", "read_probes", "read_run_json", "read_sink_stats", "read_verdicts_json",
    "results_folder_of", "sink_files", "verdict_paths", "write_e2e", "write_errors", "write_event",
    "write_instance", "write_interval", "write_json_atomically", "write_junit", "write_postfix_log",
    "write_probe_row", "write_run_json", "write_sink_stats", "write_verdicts_json",
]
