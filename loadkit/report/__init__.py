"""Reports: a results folder of Locust CSV files -> pandas -> matplotlib -> one HTML file.

A report is built from files alone (this package never imports Locust), so it
can be rebuilt later or on another machine::

    from loadkit.report import build_report
    build_report("reports/20261126-001200-smtp")          # -> .../report.html
    build_report("run1/locust", "run1.html")              # any locust --csv PREFIX
"""

from loadkit.report._build import DEFAULT_OUTPUT, build_report
from loadkit.report._load import (
    Results,
    ReportError,
    aggregated_timeline,
    find_prefix,
    load_exceptions,
    load_failures,
    load_history,
    load_metadata,
    load_results,
    load_stats,
)

__all__ = [
    "DEFAULT_OUTPUT",
    "ReportError",
    "Results",
    "aggregated_timeline",
    "build_report",
    "find_prefix",
    "load_exceptions",
    "load_failures",
    "load_history",
    "load_metadata",
    "load_results",
    "load_stats",
]
