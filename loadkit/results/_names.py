"""Every file name of a results folder (and of a target's state folder), written once."""

from __future__ import annotations

# A run's results folder
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
MINUTES_FILE = "metrics-minute.jsonl"
EVENTS_FILE = "events.jsonl"
ERRORS_FILE = "errors.csv"
VERDICTS_FILE = "verdicts.json"
JUNIT_FILE = "junit.xml"
E2E_FILE = "e2e.json"
PROBES_FILE = "probes.jsonl"
POSTFIX_LOG_FILE = "postfix_log.json"
REPORT_FILE = "report.html"

# Locust's own files: ``--csv PREFIX`` writes PREFIX + each suffix; a loadkit run uses CSV_PREFIX.
CSV_PREFIX = "locust"
STATS_SUFFIX = "_stats.csv"
HISTORY_SUFFIX = "_stats_history.csv"
FAILURES_SUFFIX = "_failures.csv"
EXCEPTIONS_SUFFIX = "_exceptions.csv"
LOCUST_STATS_FILE = CSV_PREFIX + STATS_SUFFIX

# A target's state folder (``loadkit target ... up --dir DIR``) and the sink it starts
INSTANCE_FILE = "instance.json"
SINK_STATS_FILE = "stats.json"
TRACE_LOG_FILE = "traces.log"
SINK_LOG_FILE = "sink.log"
