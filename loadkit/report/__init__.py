"""Reports: a run's results -> one self-contained HTML file of tables and charts.

A report is built from files alone (this package never imports Locust), so it
can be rebuilt later or on another machine. It reads, best first, a loadkit
results folder's ``metrics.jsonl`` (HdrHistograms per interval: exact
percentiles), Locust's ``--csv`` files, or Locust's ``--json-file`` stats::

    from loadkit.report import build_report
    build_report("reports/20261126-001200-smtp")                # -> .../report.html
    build_report("run1/locust", "run1.html")                    # any locust --csv PREFIX
    build_report("new-run", baseline="old-run")                 # what got worse
"""

from loadkit.hdr import Distribution, HistogramError, decode_counts
from loadkit.report._build import DEFAULT_OUTPUT, build_report, draw_charts
from loadkit.report._compare import Change, compare_runs
from loadkit.report._locust_csv import (
    ReportError,
    aggregated_timeline,
    find_prefix,
    load_exceptions,
    load_failures,
    load_history,
    load_metadata,
    load_stats,
)
from loadkit.report._locust_json import LocustJsonError
from loadkit.report._metrics import read_metrics
from loadkit.report._progress import NoProgress, Progress
from loadkit.report._run import TOTAL_LABEL, Row, Run, load_run

__all__ = [
    "DEFAULT_OUTPUT",
    "TOTAL_LABEL",
    "Change",
    "Distribution",
    "HistogramError",
    "LocustJsonError",
    "NoProgress",
    "Progress",
    "ReportError",
    "Row",
    "Run",
    "aggregated_timeline",
    "build_report",
    "compare_runs",
    "decode_counts",
    "draw_charts",
    "find_prefix",
    "load_exceptions",
    "load_failures",
    "load_history",
    "load_metadata",
    "load_run",
    "load_stats",
    "read_metrics",
]
