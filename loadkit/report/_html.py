"""The report page: one self-contained HTML file, charts embedded as data URIs.

Every piece of text that came from a file (request names, server replies,
tracebacks, run.json values) goes through ``escape``: a reply that says
``<script>`` is shown, never run.
"""

from __future__ import annotations

import json
import math
import numbers
from datetime import datetime, timezone
from html import escape

import pandas as pd

from loadkit import __version__
from loadkit.report._charts import latency_chart, png_data_uri, throughput_chart, users_chart
from loadkit.report._load import (
    AGGREGATED,
    FAILURES_SUFFIX,
    HISTORY_SUFFIX,
    STATS_SUFFIX,
    Results,
    aggregated_timeline,
    history_is_per_request,
)

MISSING = "\u2014"  # an em dash where there is no number
MAIL_TYPES = frozenset({"SMTP", "LMTP"})
START_KEYS = ("start_time", "started_at", "started", "start")
METADATA_LABELS = {
    "target": "Target",
    "users": "Users",
    "spawn_rate": "Spawn rate (users/s)",
    "duration": "Duration",
    "loadkit_version": "loadkit version",
}
# Epoch seconds between 2001 and 2286: a number that is surely a point in time.
EPOCH_RANGE = (1e9, 1e10)

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c; background: #fff; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid #e2e8f0; padding-bottom: 4px; }
.subtitle { color: #4a5568; margin: 0 0 12px; }
.glance { font-size: 16px; background: #f7fafc; border: 1px solid #e2e8f0; border-radius: 6px; padding: 10px 14px; }
.glance b { font-size: 18px; }
.bad { color: #c53030; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #edf2f7; text-align: right; vertical-align: top; }
th { background: #f7fafc; font-weight: 600; white-space: nowrap; }
th.text, td.text { text-align: left; }
td.text { overflow-wrap: anywhere; white-space: pre-wrap; }
tr.total td { font-weight: 600; border-top: 2px solid #cbd5e0; }
table.meta { width: auto; }
table.meta th { text-align: left; }
img.chart { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.note { color: #4a5568; font-size: 13px; }
.problem { color: #c53030; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; font-size: 12px; }
footer { color: #718096; font-size: 12px; margin-top: 32px; }
"""


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def _count(value) -> str:
    return f"{int(value):,}" if _is_number(value) else MISSING


def _ms(value) -> str:
    if not _is_number(value):
        return MISSING
    return f"{value:.1f}" if value < 10 and not float(value).is_integer() else f"{value:,.0f}"


def _rate(value) -> str:
    return f"{value:,.1f}" if _is_number(value) else MISSING


def _percent(part, whole) -> str:
    if not (_is_number(part) and _is_number(whole)) or whole <= 0:
        return MISSING
    return f"{100.0 * part / whole:.2f}%"


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(row: pd.Series, column: str):
    """A numeric cell of a row, or None when the file has no such column."""
    return row[column] if column in row.index else None


def _metadata_value(key: str, value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if _is_number(value) and key in START_KEYS + ("stop_time", "stopped_at", "stopped", "stop", "end_time", "end"):
        if EPOCH_RANGE[0] <= value <= EPOCH_RANGE[1]:
            return _utc(value)
    if _is_number(value) and key == "duration":
        return f"{value:g} s"
    return "" if value is None else str(value)


def _run_date(results: Results, timeline: pd.DataFrame) -> str:
    for key in START_KEYS:
        value = results.metadata.get(key)
        if value is not None and value != "":
            return _metadata_value(key, value)
    if len(timeline):
        return _utc(timeline["timestamp"].iloc[0])
    return ""


def _noun(stats: pd.DataFrame) -> str:
    """ "messages" for a mail run, "requests" for anything else Locust measured."""
    types = set(stats.loc[stats["Name"] != AGGREGATED, "Type"])
    return "messages" if types and types <= MAIL_TYPES else "requests"


def _total_row(stats: pd.DataFrame) -> pd.Series | None:
    total = stats[(stats["Name"] == AGGREGATED) & (stats["Type"] == "")]
    return total.iloc[-1] if len(total) else None


def _glance(stats: pd.DataFrame) -> str:
    total = _total_row(stats)
    if total is None:
        return '<p class="glance">No Aggregated row in the stats file.</p>'
    noun = _noun(stats)
    count, failures = total["Request Count"], total["Failure Count"]
    failed = _percent(failures, count)
    failed_class = ' class="bad"' if _is_number(failures) and failures > 0 else ""
    parts = [
        f"<b>{_count(count)}</b> {noun}",
        f"<b>{_rate(_cell(total, 'Requests/s'))}</b> {noun}/s",
        f"<b{failed_class}>{failed}</b> failed",
        f"p95 <b>{_ms(_cell(total, '95%'))}</b> ms",
    ]
    return '<p class="glance">' + " &middot; ".join(parts) + "</p>"


def _table(table_id: str, headers: list[tuple[str, bool]], rows: list[tuple[str, list[tuple[str, bool]]]]) -> str:
    """headers: (label, is_text); rows: (css class, cells of (already escaped html, is_text))."""
    head = "".join(f'<th{" class=text" if text else ""}>{escape(label)}</th>' for label, text in headers)
    body = []
    for row_class, cells in rows:
        tds = "".join(f'<td{" class=text" if text else ""}>{html}</td>' for html, text in cells)
        body.append(f'<tr{f" class={row_class}" if row_class else ""}>{tds}</tr>')
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _requests_table(stats: pd.DataFrame) -> str:
    headers = [
        ("Type", True), ("Name", True), ("Count", False), ("Failures", False), ("Failure %", False),
        ("Requests/s", False), ("Min ms", False), ("Median ms", False), ("p90 ms", False), ("p95 ms", False),
        ("p99 ms", False), ("Max ms", False), ("Avg size (bytes)", False),
    ]  # fmt: skip
    rows = []
    for _, row in stats.iterrows():
        is_total = row["Name"] == AGGREGATED and row["Type"] == ""
        count = row["Request Count"]
        cells = [
            (escape(row["Type"]), True),
            (escape(row["Name"]), True),
            (_count(count), False),
            (_count(row["Failure Count"]), False),
            (_percent(row["Failure Count"], count), False),
            (_rate(_cell(row, "Requests/s")), False),
            # Locust writes a min of 0 for an entry with no requests: show nothing instead.
            (_ms(_cell(row, "Min Response Time")) if count else MISSING, False),
            (_ms(_cell(row, "Median Response Time")) if count else MISSING, False),
            (_ms(_cell(row, "90%")), False),
            (_ms(_cell(row, "95%")), False),
            (_ms(_cell(row, "99%")), False),
            (_ms(_cell(row, "Max Response Time")) if count else MISSING, False),
            (_count(_cell(row, "Average Content Size")) if count else MISSING, False),
        ]
        rows.append(("total" if is_total else "", cells))
    return _table("requests", headers, rows)


def _failures_table(failures: pd.DataFrame) -> str:
    if failures.empty:
        return '<p class="note">No failures.</p>'
    headers = [("Method", True), ("Name", True), ("Error", True), ("Occurrences", False)]
    rows = [
        (
            "",
            [
                (escape(row["Method"]), True),
                (escape(row["Name"]), True),
                (escape(row["Error"]), True),
                (_count(row["Occurrences"]), False),
            ],
        )
        for _, row in failures.iterrows()
    ]
    return _table("failures", headers, rows)


def _exceptions_section(exceptions: pd.DataFrame) -> str:
    if exceptions.empty:
        return ""
    headers = [("Count", False), ("Message", True), ("Traceback", True), ("Nodes", True)]
    rows = []
    for _, row in exceptions.iterrows():
        traceback = escape(str(row.get("Traceback", "")))
        cells = [
            (_count(row["Count"]), False),
            (escape(row["Message"]), True),
            (f"<details><summary>show</summary><pre>{traceback}</pre></details>" if traceback else "", True),
            (escape(str(row.get("Nodes", ""))), True),
        ]
        rows.append(("", cells))
    return "<h2>Exceptions in users</h2>" + _table("exceptions", headers, rows)


def _metadata_table(metadata: dict) -> str:
    if not metadata:
        return ""
    keys = [key for key in METADATA_LABELS if key in metadata] + [key for key in metadata if key not in METADATA_LABELS]
    rows = "".join(
        f"<tr><th>{escape(METADATA_LABELS.get(key, str(key).replace('_', ' ').capitalize()))}</th>"
        f'<td class="text">{escape(_metadata_value(key, metadata[key]))}</td></tr>'
        for key in keys
    )
    return f'<h2>Run</h2><table class="meta" id="run">{rows}</table>'


def _image(png: bytes, alt: str) -> str:
    return f'<img class="chart" alt="{escape(alt)}" src="{png_data_uri(png)}">'


def _charts(results: Results, timeline: pd.DataFrame) -> str:
    if timeline.empty:
        return (
            '<h2>Over time</h2><p class="note">No history rows (the run was shorter than '
            "Locust's first write, or the history file is missing).</p>"
        )
    parts = ["<h2>Over time</h2>"]
    throughput = throughput_chart(timeline)
    if throughput is not None:
        parts.append(_image(throughput, "Requests and failures per second over time"))
        parts.append('<p class="note">Per second, from the change of Locust\'s running totals between history rows.</p>')
    else:
        parts.append('<p class="note">Too few history rows to compute rates.</p>')
    # Without --csv-full-history Locust writes percentiles since the start; with it, of the last ~10 s.
    if history_is_per_request(results.history):
        title = "Response time percentiles, last ~10 s"
        note = "Percentiles of the last ~10 seconds (locust --csv-full-history)."
    else:
        title = "Response time percentiles, since start"
        note = "Percentiles of all requests since the start, as Locust writes them without --csv-full-history."
    latency = latency_chart(timeline, title)
    if latency is not None:
        parts.append(_image(latency, title))
        parts.append(f'<p class="note">{escape(note)}</p>')
    else:
        parts.append('<p class="note">No response times recorded.</p>')
    users = users_chart(timeline)
    if users is not None:
        parts.append(_image(users, "Users over time"))
    return "".join(parts)


def render_page(results: Results) -> str:
    """The whole report as one HTML string."""
    timeline = aggregated_timeline(results.history)
    target = results.metadata.get("target")
    target_text = _metadata_value("target", target) if target not in (None, "") else results.folder.name
    title = f"Load test report: {target_text}"
    subtitle = " \u00b7 ".join(part for part in (_run_date(results, timeline), results.folder.name) if part)
    problems = "".join(f'<p class="problem">{escape(problem)}</p>' for problem in results.problems)
    sources = ", ".join(escape(f"{results.prefix.name}{suffix}") for suffix in (STATS_SUFFIX, HISTORY_SUFFIX, FAILURES_SUFFIX))
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>",
            f"<h1>{escape(title)}</h1>",
            f'<p class="subtitle">{escape(subtitle)}</p>',
            problems,
            _glance(results.stats),
            _metadata_table(results.metadata),
            "<h2>Requests</h2>",
            _requests_table(results.stats),
            _charts(results, timeline),
            "<h2>Failures</h2>",
            _failures_table(results.failures),
            _exceptions_section(results.exceptions),
            f"<footer>Built by loadkit {escape(__version__)} from {sources}. Response times in milliseconds.</footer>",
            "</main></body></html>\n",
        ]
    )
