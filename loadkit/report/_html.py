"""The report page: one self-contained HTML file, charts inline as SVG.

Every piece of text that came from a file (request names, server replies,
tracebacks, run.json values, event details) goes through ``escape``: a
reply that says ``<script>`` is shown, never run (matplotlib escapes the
text it writes into a chart). The page's only script is our own: it marks
the body once the page has loaded and says how many charts it holds, so a
headless browser can tell a page that renders from one that does not.

On a phone the page is one column: each chart has a narrow drawing of its
own, and a table too wide for the screen scrolls sideways instead of
breaking its words.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

from loadkit import __version__
from loadkit.report._charts import Drawing
from loadkit.report._compare import LATENCY_FLOOR_MS, MIN_REQUESTS, SIGNIFICANCE, Change, settings_differences
from loadkit.report._run import NORMAL_EVENTS, Row, Run, integrity_problems
from loadkit.report._server_side import e2e_html, server_html, sink_html, sink_verdict

MISSING = "\u2014"  # an em dash where there is no number
START_KEYS = ("started_at", "start_time", "started", "start")
TIME_KEYS = frozenset(START_KEYS + ("stopped_at", "stop_time", "stopped", "stop", "end_time", "end"))
METADATA_LABELS = {
    "command": "Command",
    "target": "Target",
    "locustfile": "Locustfile",
    "user_classes": "User classes",
    "users": "Users",
    "spawn_rate": "Spawn rate (users/s)",
    "duration": "Duration",
    "started_at": "Started",
    "stopped_at": "Stopped",
    "workers": "Workers",
    "requests": "Requests",
    "failures": "Failures",
    "loadkit_version": "loadkit version",
    "locust_version": "Locust version",
    "python_version": "Python version",
    "hostname": "Load generator host",
}
# Epoch seconds between 2001 and 2286: a number that is surely a point in time.
EPOCH_RANGE = (1e9, 1e10)
MEASURE_LABELS = {"throughput": "Throughput", "failures": "Failures"}
# run.json keys shown in sections of their own, not in the Run table.
OWN_SECTIONS = frozenset({"sink", "worker_shares"})
MOSTLY_FAILED = 0.5  # above this failure ratio, the failures lead the cards

STYLE = """
:root { --ink: #1a202c; --muted: #4a5568; --line: #e2e8f0; --soft: #f7fafc; --bad: #c53030; --good: #2f855a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #fff; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 2px; letter-spacing: -0.01em; }
h2 { font-size: 17px; margin: 34px 0 10px; padding-bottom: 5px; border-bottom: 2px solid var(--line); }
h3 { font-size: 14px; margin: 18px 0 6px; color: var(--muted); }
.subtitle { color: var(--muted); margin: 0 0 14px; }
nav { font-size: 13px; margin: 0 0 16px; color: var(--muted); display: flex; flex-wrap: wrap; gap: 4px 14px; }
nav a { color: #2b6cb0; text-decoration: none; }
nav a:hover { text-decoration: underline; }
.glance { display: flex; flex-wrap: wrap; gap: 10px; margin: 0 0 8px; padding: 0; list-style: none; }
.glance li { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 112px; }
.glance .value { display: block; font-size: 20px; font-weight: 650; font-variant-numeric: tabular-nums; }
.glance .what { display: block; font-size: 12px; color: var(--muted); }
.glance li.bad { border-color: #feb2b2; background: #fff5f5; }
.glance li.bad .value { color: var(--bad); }
.glance li.good .value { color: var(--good); }
.bad { color: var(--bad); }
.good { color: var(--good); }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 13px; }
th, td { padding: 5px 9px; border-bottom: 1px solid #edf2f7; text-align: right; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; border-bottom: 1px solid var(--line); }
th.text, td.text { text-align: left; }
td { white-space: nowrap; }
td.wrap, td.note { white-space: normal; min-width: 16em; }
td.wrap { white-space: pre-wrap; }
tbody tr:hover { background: #fbfdff; }
tr.total td { font-weight: 650; border-top: 2px solid #cbd5e0; }
tr.worse td { background: #fff5f5; }
tr.worse td.flag, td.fail, td.flag { color: var(--bad); font-weight: 650; }
td.cell-worse { color: var(--bad); font-weight: 650; }
td.cell-better { color: var(--good); }
.was { font-size: 11.5px; color: #718096; font-weight: 400; white-space: nowrap; }
#comparison td, #comparison-phases td { white-space: nowrap; }
#comparison td.flag, #comparison-phases td.flag { white-space: normal; min-width: 9em; }
details > summary { margin: 10px 0 6px; }
td.pass { color: var(--good); font-weight: 650; }
table.meta { width: auto; min-width: 50%; }
table.meta th { text-align: left; width: 1%; }
table.meta td { white-space: normal; }
figure.chart { margin: 10px 0 4px; }
figure.chart svg { width: 100%; height: auto; display: block; }
figure.chart .narrow { display: none; }
figure.chart svg text { pointer-events: none; }
.verdict { font-weight: 650; margin: 6px 0 10px; }
.verdict.ok { color: var(--good); }
.verdict.off { color: var(--bad); }
#sink-table th { text-align: left; width: 1%; }
@media (max-width: 700px) {
  main { padding: 16px 12px 32px; }
  figure.chart .wide { display: none; }
  figure.chart .narrow { display: block; }
  table.meta { min-width: 0; }
  .glance li { min-width: 0; flex: 1 1 40%; padding: 6px 10px; }
  .glance .value { font-size: 17px; }
  td.wrap, td.note { min-width: 12em; }
  #sink-table td.note { display: none; }
}
figure.chart figcaption, .note { color: var(--muted); font-size: 12.5px; }
.problem { color: var(--bad); margin: 4px 0; }
pre { white-space: pre-wrap; margin: 0; font-size: 12px; font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12.5px; }
details summary { cursor: pointer; color: #2b6cb0; }
footer { color: #718096; font-size: 12px; margin-top: 40px; border-top: 1px solid var(--line); padding-top: 10px; }
"""

# Sets data-rendered on <body>: "all" once every chart has a drawing with a size, "broken" when one has not.
SCRIPT = """
(function () {
  function check() {
    var charts = document.querySelectorAll("figure.chart"), ok = true;
    for (var i = 0; i < charts.length; i++) {
      var drawings = charts[i].querySelectorAll("svg"), drawn = false;
      for (var j = 0; j < drawings.length; j++) {
        var box = drawings[j].getBoundingClientRect();
        if (box.width > 0 && box.height > 0) { drawn = true; }
      }
      if (!drawn) { ok = false; }
    }
    document.body.setAttribute("data-rendered", ok ? "all" : "broken");
    document.body.setAttribute("data-charts", String(charts.length));
  }
  if (document.readyState === "complete") { check(); } else { window.addEventListener("load", check); }
})();
"""


@dataclass
class Chart:
    """A drawn chart and where it goes on the page."""

    key: str  # element id: chart-<key>
    drawing: Drawing
    alt: str
    caption: str = ""


# -- numbers as text ------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value) and not math.isinf(value)


def count_text(value) -> str:
    return f"{int(round(value)):,}" if _is_number(value) else MISSING


def ms_text(value) -> str:
    """Milliseconds to about three significant digits, the precision of the histograms."""
    if not _is_number(value):
        return MISSING
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def rate_text(value) -> str:
    if not _is_number(value):
        return MISSING
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def percent_text(ratio) -> str:
    if not _is_number(ratio):
        return MISSING
    if ratio == 0:
        return "0%"
    percent = 100.0 * ratio
    return f"{percent:.2f}%" if percent >= 0.01 else f"{percent:.4f}%"


def duration_text(seconds) -> str:
    if not _is_number(seconds):
        return MISSING
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:g} s" if seconds == int(seconds) else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def utc_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def metadata_text(key: str, value) -> str:
    if key == "worker_shares" and isinstance(value, dict):
        return " \u00b7 ".join(f"{worker}: {count_text(count) if _is_number(count) else count}" for worker, count in value.items())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if _is_number(value) and key in TIME_KEYS and EPOCH_RANGE[0] <= value <= EPOCH_RANGE[1]:
        return utc_text(value)
    if _is_number(value) and key == "duration":
        return duration_text(value)
    if _is_number(value) and key in ("requests", "failures") and float(value).is_integer():
        return count_text(value)
    return "" if value is None else str(value)


# -- building blocks -------------------------------------------------------------------


def _table(table_id: str, headers: list[tuple[str, bool]], rows: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """headers: (label, is_text); rows: (css class, cells of (already escaped html, css class))."""
    head = "".join(f'<th{" class=text" if text else ""}>{escape(label)}</th>' for label, text in headers)
    body = []
    for row_class, cells in rows:
        tds = "".join(f'<td{f" class={css!r}" if css else ""}>{html}</td>' for html, css in cells)
        body.append(f'<tr{f" class={row_class!r}" if row_class else ""}>{tds}</tr>')
    return f'<div class="table-wrap"><table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _figure(chart: Chart) -> str:
    caption = f"<figcaption>{escape(chart.caption)}</figcaption>" if chart.caption else ""
    label = f' aria-label="{escape(chart.alt)}"'
    wide = chart.drawing.wide.replace("<svg ", f"<svg{label} ", 1)
    narrow = chart.drawing.narrow.replace("<svg ", f"<svg{label} ", 1)
    return (f'<figure class="chart" id="chart-{chart.key}"><div class="wide">{wide}</div>'
            f'<div class="narrow">{narrow}</div>{caption}</figure>')  # fmt: skip


def _latency_headers(noun: str) -> list[tuple[str, bool]]:
    return [
        ("Type", True), ("Name", True), ("Count", False), ("Failures", False), ("Failure %", False), (f"{noun}/s", False),
        ("Min ms", False), ("p50 ms", False), ("p90 ms", False), ("p95 ms", False), ("p99 ms", False),
        ("p99.9 ms", False), ("Max ms", False),
    ]  # fmt: skip


def _latency_cells(row: Row) -> list[tuple[str, str]]:
    return [
        (escape(row.type), "text"),
        (escape(row.name if row.kind != "failed" else f"{row.name} (failed)"), "text"),
        (count_text(row.count), ""),
        (count_text(row.failures), ""),
        (percent_text(row.failure_ratio), "bad" if (row.failures or 0) > 0 else ""),
        (rate_text(row.rate if row.kind == "failed" or row.failed_latency is None else row.accepted_rate), ""),
        *((ms_text(row.latency.get(key)), "") for key in ("min", "p50", "p90", "p95", "p99", "p99.9", "max")),
    ]


def summary_table(run: Run) -> str:
    rows = []
    for row in run.requests:
        rows.append(("", _latency_cells(row)))
        if (failed := row.failed_row()) is not None:
            rows.append(("failed", _latency_cells(failed)))
    if run.total is not None:
        rows.append(("total", _latency_cells(run.total)))
        if len(run.requests) > 1 and (failed := run.total.failed_row()) is not None:
            rows.append(("total failed", _latency_cells(failed)))
    if not rows:
        return '<p class="note">No requests were measured.</p>'
    return _table("summary", _latency_headers(run.noun), rows)


def phases_table(run: Run) -> str:
    headers = [("Type", True), ("Phase", True)] + _latency_headers(run.noun)[2:]
    headers[5] = ("per s", False)
    return _table("phases", headers, [("", _latency_cells(row)) for row in run.phases])


def _ms_card(value) -> str:
    return f"{ms_text(value)} ms" if _is_number(value) else MISSING


def _headline(total: Row, noun: str) -> list[tuple[str, str, str]]:
    """Accepted messages, their rate and times; the failed ones apart (first when most failed)."""
    if total.failed_latency is None and total.failures:  # Locust's own files (or older ones): no split to show
        failed = [("bad", count_text(total.failures), f"{noun} failed"), ("bad", percent_text(total.failure_ratio), "failed")]
        cards = [
            ("", count_text(total.count), noun),
            ("", rate_text(total.rate), f"{noun}/s"),
            ("", _ms_card(total.latency.get("p50")), "p50"),
            ("", _ms_card(total.latency.get("p95")), "p95"),
            ("", _ms_card(total.latency.get("p99")), "p99"),
        ]
        return failed + cards if (total.failure_ratio or 0) > MOSTLY_FAILED else cards[:2] + failed[1:] + cards[2:]
    accepted = [
        ("", count_text(total.accepted), f"{noun} accepted"),
        ("", rate_text(total.accepted_rate), "accepted/s"),
        ("", _ms_card(total.latency.get("p50")), "p50 accepted"),
        ("", _ms_card(total.latency.get("p95")), "p95 accepted"),
        ("", _ms_card(total.latency.get("p99")), "p99 accepted"),
    ]
    if not total.failures:
        return accepted
    failed_p95 = (total.failed_latency or {}).get("p95")
    failed = [
        ("bad", f"{count_text(total.failures)} ({percent_text(total.failure_ratio)})", f"{noun} failed"),
        ("bad", rate_text(total.failed_rate), "failed/s"),
        ("bad", _ms_card(failed_p95), "p95 failed"),
    ]
    return failed + accepted if (total.failure_ratio or 0) > MOSTLY_FAILED else accepted + failed


def _peak_users(run: Run):
    users = run.timeline["users"].dropna() if "users" in run.timeline else None
    if users is not None and len(users):
        return users.max()
    return run.metadata.get("users")


def glance(run: Run, changes: list[Change] | None) -> str:
    total = run.total
    noun = "messages" if run.noun == "msgs" else "requests"
    items = []
    if total is not None:
        items += _headline(total, noun)
    peak = _peak_users(run)
    if _is_number(peak):
        items.append(("", count_text(peak), "peak users"))
    delivered = _delivered(run)
    if delivered is not None:
        items.append(delivered)
    if _is_number(run.duration):
        items.append(("", duration_text(run.duration), "duration"))
    problems = integrity_problems(run)
    if problems:
        items.append(("bad", str(len(problems)), "integrity events"))
    failed_verdicts = [v for v in run.verdicts if v.get("passed") is False]
    if run.verdicts:
        items.append(("bad" if failed_verdicts else "good", f"{len(run.verdicts) - len(failed_verdicts)}/{len(run.verdicts)}", "thresholds passed"))
    if changes is not None:
        worse = sum(1 for change in changes if change.worse)
        items.append(("bad" if worse else "good", str(worse), "worse than baseline"))
    if not items:
        return ""
    lis = "".join(
        f'<li{f" class={css!r}" if css else ""}><span class="value">{escape(value)}</span><span class="what">{escape(what)}</span></li>'
        for css, value, what in items
    )
    return f'<ul class="glance" id="glance">{lis}</ul>'


def _sent(run: Run):
    total = run.total
    if total is None or not _is_number(total.count):
        return None
    return total.count - (total.failures or 0)


def _delivered(run: Run) -> tuple[str, str, str] | None:
    """Delivered of sent: the sink's count, or end-to-end delivery, against the accepted messages."""
    sink = run.metadata.get("sink")
    side = run.server_side
    e2e = getattr(side, "e2e", None) or {}
    sent = _sent(run)
    if isinstance(e2e.get("delivered"), int) and isinstance(e2e.get("accepted"), int):
        delivered, sent = e2e["delivered"], e2e["accepted"]
    elif isinstance(sink, dict) and isinstance(sink.get("messages"), int) and sent is not None:
        delivered = sink["messages"]
    else:
        return None
    css = "good" if delivered == sent else "bad"
    return css, f"{delivered:,} / {int(sent):,}", "delivered / sent"


def sink_verdict_line(run: Run) -> str:
    total = run.total
    verdict = sink_verdict(run.metadata.get("sink"), _sent(run), total.failures if total is not None else None)
    if verdict is None:
        return ""
    agree, text = verdict
    mark = "\u2713 " if agree else "\u2717 "
    return f'<p class="verdict {"ok" if agree else "off"}" id="sink-verdict">{escape(mark + text)}</p>'


def _worker_name(worker: str) -> tuple[str, str]:
    """Locust names a worker HOST_HEX32: (host, a short id)."""
    host, _, suffix = worker.rpartition("_")
    if host and len(suffix) == 32 and all(c in "0123456789abcdef" for c in suffix):
        return host, suffix[:8]
    return worker, ""


def workers_section(run: Run) -> str:
    shares = run.metadata.get("worker_shares")
    if not isinstance(shares, dict) or not shares:
        return ""
    counted = sum(count for count in shares.values() if _is_number(count))
    duration = run.duration if _is_number(run.duration) and run.duration > 0 else None
    rows = []
    for worker, count in sorted(shares.items(), key=lambda item: str(item[0])):
        host, short = _worker_name(str(worker))
        share = count / counted if _is_number(count) and counted else None
        rate = count / duration if _is_number(count) and duration else None
        rows.append(("", [
            (escape(host), "text"), (escape(short), "text"), (count_text(count), ""),
            (percent_text(share), ""), (rate_text(rate), ""),
        ]))  # fmt: skip
    headers = [("Host", True), ("Worker", True), (f"{'Messages' if run.noun == 'msgs' else 'Requests'}", False),
               ("Share", False), (f"{run.noun}/s", False)]  # fmt: skip
    note = ('<p class="note">Worker: the start of the id Locust gives it. Latency is merged on the master, '
            "so there is no percentile per worker.</p>")  # fmt: skip
    return f'<h2 id="workers">Workers</h2>{_table("workers", headers, rows)}{note}'


def sink_section(run: Run, charts: list[Chart]) -> str:
    table = sink_html(run.metadata.get("sink"))
    if not table:
        return ""
    lead = '<p class="note">The loadkit sink the run sent to, as it counted.</p>'
    return _section("sink", "Sink", charts, lead + table)


def _verdict_text(value, unit) -> str:
    if _is_number(value):
        text = f"{value:,.6g}"
        return f"{text} {unit}" if unit else text
    return MISSING if value is None else str(value)


def verdicts_section(run: Run) -> str:
    """Thresholds as loadkit.thresholds writes them: expression, measured (or value), limit, passed, error."""
    if not run.verdicts:
        return ""
    rows = []
    for verdict in run.verdicts:
        passed = verdict.get("passed")
        error = verdict.get("error")
        unit = str(verdict.get("unit") or "")
        result = "error" if error else "pass" if passed is True else "FAIL" if passed is False else MISSING
        measured = verdict.get("measured", verdict.get("value"))
        rows.append(
            (
                "worse" if passed is False else "",
                [
                    (f"<code>{escape(str(verdict.get('expression', '')))}</code>", "text"),
                    (escape(_verdict_text(measured, unit)), ""),
                    (escape(_verdict_text(verdict.get("limit"), unit)), ""),
                    (result, "pass" if passed is True else "fail" if passed is False else ""),
                    (escape(str(error or "")), "text"),
                ],
            )
        )
    headers = [("Threshold", True), ("Measured", False), ("Limit", False), ("Result", False), ("Note", True)]
    return f'<h2 id="thresholds">Thresholds</h2>{_table("verdicts", headers, rows)}'


def _change_text(change: Change) -> str:
    if change.measure == "failures":
        if not (_is_number(change.current) and _is_number(change.baseline)):
            return MISSING
        points = 100.0 * (change.current - change.baseline)
        return f"{points:+.2f} pt"
    relative = change.relative
    return MISSING if relative is None else f"{100.0 * relative:+.1f}%"


COMPARED_MEASURES = ("throughput", "failures", "p50", "p95", "p99", "p99.9", "max")
PHASE_MEASURES = ("p50", "p95", "p99", "p99.9")


def _change_number(measure: str, value) -> str:
    if measure == "throughput":
        return rate_text(value)
    if measure == "failures":
        return percent_text(value)
    return ms_text(value)


def _comparison_table(table_id: str, run: Run, changes: list[Change], measures_shown) -> str:
    """One row per name, one column per measure: this run's value, the baseline's and the change."""
    by_label: dict[str, dict[str, Change]] = {}
    for change in changes:
        by_label.setdefault(change.label, {})[change.measure] = change
    titles = {"throughput": f"{run.noun}/s", "failures": "Failures"}
    headers = [("Name", True), *((titles.get(m, f"{m} ms"), False) for m in measures_shown), ("Worse", True)]
    rows = []
    for label, measures in by_label.items():
        cells = [(escape(label), "text")]
        for measure in measures_shown:
            change = measures.get(measure)
            if change is None:
                cells.append((MISSING, ""))
                continue
            now = escape(_change_number(measure, change.current))
            was = escape(_change_number(measure, change.baseline))
            css = "cell-worse" if change.worse else "cell-better" if change.better else ""
            why = f' title="{escape(change.note)}"' if change.note else ""  # the test that flagged it, or why not
            cells.append((f'{now}<div class="was"{why}>was {was} \u00b7 {escape(_change_text(change))}</div>', css))
        worse = [MEASURE_LABELS.get(m, m) for m in measures_shown if m in measures and measures[m].worse]
        cells.append((escape(", ".join(worse)), "text flag"))
        rows.append(("worse" if worse else "", cells))
    return _table(table_id, headers, rows)


def settings_check(run: Run, baseline: Run) -> str:
    same, different = settings_differences(run, baseline)
    if different:
        return (f'<p class="bad" id="settings-check">Not the same settings: {escape(", ".join(different))}. '
                "A change below may come from them rather than from the target.</p>")  # fmt: skip
    if same:
        return f'<p class="good" id="settings-check">Same settings: {escape(", ".join(same))}.</p>'
    return '<p class="note" id="settings-check">Neither run says its settings: whether they match is unknown.</p>'


def comparison_section(run: Run, baseline: Run, changes: list[Change]) -> str:
    worse = [change for change in changes if change.worse]
    lead = (
        f'<p>Baseline: <b>{escape(baseline.label)}</b> ({escape(baseline.source)}).</p>'
        + settings_check(run, baseline)
        + '<p class="note">Flagged only beyond the noise: a percentile more than 10% higher and by '
        f"{LATENCY_FLOOR_MS:g} ms or more, a throughput more than 10% lower, from enough requests "
        f"(a p99 needs {MIN_REQUESTS['p99']:,} in each run), with each second's values of the two runs apart "
        f"(Mann-Whitney p < {SIGNIFICANCE:g}, and the middle 80% of each run's seconds not overlapping); "
        "a failure ratio up. A phase is flagged only with its message.</p>"
        f'<p><b class="{"bad" if worse else "good"}">{len(worse)} measures worse.</b></p>'
    )
    requests = [change for change in changes if not change.label.endswith(" (phase)")]
    phases = [change for change in changes if change.label.endswith(" (phase)")]
    html = lead + _comparison_table("comparison", run, requests, COMPARED_MEASURES)
    if phases:
        phases_worse = sum(1 for change in phases if change.worse)
        css = ' class="bad"' if phases_worse else ""
        html += (
            f"<details><summary{css}>Phases compared: {phases_worse} measures worse</summary>"
            + _comparison_table("comparison-phases", run, phases, PHASE_MEASURES)
            + "</details>"
        )
    return f'<h2 id="baseline">Compared with baseline</h2>{html}'


def errors_section(run: Run) -> str:
    if run.errors.empty:
        failures = run.total.failures if run.total is not None else 0
        if failures:
            return (
                f'<h2 id="errors">Errors</h2><p class="note">{count_text(failures)} failures, but {escape(run.source)} '
                "keeps no error messages (Locust writes them with --csv).</p>"
            )
        return '<h2 id="errors">Errors</h2><p class="note">No failures.</p>'
    has_example = run.errors["example"].astype(str).str.len().gt(0).any()
    has_phase = run.errors["phase"].astype(str).str.len().gt(0).any()
    headers = [("Type", True), ("Name", True), ("Error", True)]
    headers += [("Phase", True)] if has_phase else []
    headers += [("Code" if run.noun == "msgs" else "Status", True), ("Count", False)]
    headers += [("Example reply", True)] if has_example else []
    rows = []
    for _, error in run.errors.iterrows():
        cells = [(escape(str(error["type"])), "text"), (escape(str(error["name"])), "text"), (escape(str(error["error"])), "text wrap")]
        if has_phase:
            cells.append((escape(str(error["phase"])), "text"))
        cells += [(escape(str(error["code"])), "text"), (count_text(error["count"]), "")]
        if has_example:
            cells.append((f"<pre>{escape(str(error['example']))}</pre>", "text"))
        rows.append(("", cells))
    note = f'<p class="note">From {escape(run.errors_source)}.</p>' if run.errors_source else ""
    return f'<h2 id="errors">Errors</h2>{_table("errors", headers, rows)}{note}'


def exceptions_section(run: Run) -> str:
    exceptions = run.exceptions
    if exceptions is None or exceptions.empty:
        return ""
    headers = [("Count", False), ("Message", True), ("Traceback", True), ("Nodes", True)]
    rows = []
    for _, row in exceptions.iterrows():
        traceback = escape(str(row.get("Traceback", "")))
        cells = [
            (count_text(row["Count"]), ""),
            (escape(str(row["Message"])), "text"),
            (f"<details><summary>show</summary><pre>{traceback}</pre></details>" if traceback else "", "text"),
            (escape(str(row.get("Nodes", ""))), "text"),
        ]
        rows.append(("", cells))
    return '<h2 id="exceptions">Exceptions in users</h2>' + _table("exceptions", headers, rows)


def events_section(run: Run) -> str:
    if not run.events:
        return ""
    rows = []
    for event in run.events:
        when = event.get("time")
        at = MISSING
        if _is_number(when) and _is_number(run.origin):
            since = when - run.origin
            at = f"{since:+.1f} s" if abs(since) < 120 else ("+" if since >= 0 else "-") + duration_text(abs(since))
        bad = str(event.get("kind")) not in NORMAL_EVENTS
        rows.append(
            (
                "worse" if bad else "",
                [
                    (escape(utc_text(when)) if _is_number(when) and EPOCH_RANGE[0] <= when <= EPOCH_RANGE[1] else escape(str(when)), "text"),
                    (escape(at), ""),
                    (escape(str(event.get("kind", ""))), "text flag" if bad else "text"),
                    (escape("" if event.get("worker") is None else str(event.get("worker"))), "text"),
                    (escape(str(event.get("detail", ""))), "text wrap"),
                ],
            )
        )
    headers = [("Time", True), ("Since start", False), ("Event", True), ("Worker", True), ("Detail", True)]
    problems = integrity_problems(run)
    lead = (
        f'<p class="bad">{len(problems)} {"event says" if len(problems) == 1 else "events say"} the numbers may be off '
        "(a worker missing, a load generator short of CPU, ...).</p>"
        if problems
        else '<p class="note">Nothing happened that would make the numbers doubtful.</p>'
    )
    return f'<h2 id="integrity">Integrity events</h2>{lead}{_table("events", headers, rows)}'


def metadata_section(run: Run) -> str:
    metadata = run.metadata
    if not metadata:
        return ""
    keys = [key for key in METADATA_LABELS if key in metadata] + [key for key in metadata if key not in METADATA_LABELS]
    keys = [key for key in keys if key not in OWN_SECTIONS]
    rows = "".join(
        f"<tr><th>{escape(METADATA_LABELS.get(key, str(key).replace('_', ' ').capitalize()))}</th>"
        f'<td class="text">{escape(metadata_text(key, metadata[key]))}</td></tr>'
        for key in keys
    )
    return f'<h2 id="run">Run</h2><div class="table-wrap"><table class="meta" id="run-table">{rows}</table></div>'


def run_date(run: Run) -> str:
    for key in START_KEYS:
        value = run.metadata.get(key)
        if value is not None and value != "":
            return metadata_text(key, value)
    if _is_number(run.origin):
        return utc_text(run.origin)
    return ""


def _section(section_id: str, title: str, charts: list[Chart], extra: str = "") -> str:
    if not charts and not extra:
        return ""
    return f'<h2 id="{section_id}">{escape(title)}</h2>' + extra + "".join(_figure(chart) for chart in charts)


def render_page(run: Run, charts: dict[str, list[Chart]], baseline: Run | None = None, changes: list[Change] | None = None) -> str:
    """The whole report as one HTML string. ``charts``: section name -> charts, drawn already."""
    target = run.metadata.get("target")
    target_text = metadata_text("target", target) if target not in (None, "") else run.label
    title = f"Load test report: {target_text}"
    subtitle = " \u00b7 ".join(part for part in (run_date(run), run.label, f"from {run.source}") if part)
    problems = "".join(f'<p class="problem">{escape(problem)}</p>' for problem in run.problems)
    if baseline is not None:
        problems += "".join(f'<p class="problem">baseline: {escape(problem)}</p>' for problem in baseline.problems)
    phases_html = ""
    if run.phases:
        phases_html = _section("phases", "Phases", charts.get("phases", []), phases_table(run))
    side = run.server_side
    e2e_section = _section("e2e", "End-to-end delivery", charts.get("e2e", []), e2e_html(side)) if side else ""
    server_section = _section("server", "Server side", charts.get("server", []), server_html(side)) if side else ""
    sink = sink_section(run, charts.get("sink", []))
    workers = workers_section(run)
    sections = [
        ("thresholds", "Thresholds", bool(run.verdicts)),
        ("baseline", "Baseline", baseline is not None),
        ("summary", "Summary", True),
        ("over-time", "Over time", bool(charts.get("time"))),
        ("latency", "Latency", bool(charts.get("latency"))),
        ("phases", "Phases", bool(phases_html)),
        ("e2e", "Delivery", bool(e2e_section)),
        ("server", "Server side", bool(server_section)),
        ("sink", "Sink", bool(sink)),
        ("workers", "Workers", bool(workers)),
        ("errors", "Errors", True),
        ("integrity", "Integrity", bool(run.events)),
        ("run", "Run", bool(run.metadata)),
    ]
    nav = "<nav>" + "".join(f'<a href="#{key}">{label}</a>' for key, label, shown in sections if shown) + "</nav>"
    sources = escape(", ".join(dict.fromkeys(name for name in (run.source, run.errors_source) if name)))
    baseline_note = ""
    if baseline is not None:
        baseline_note = f'<p class="note">Grey dashed lines and marks: the baseline, {escape(baseline.label)}.</p>'
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>",
            f"<h1>{escape(title)}</h1>",
            f'<p class="subtitle">{escape(subtitle)}</p>',
            nav,
            problems,
            sink_verdict_line(run),
            glance(run, changes),
            verdicts_section(run),
            comparison_section(run, baseline, changes or []) if baseline is not None else "",
            f'<h2 id="summary">Summary</h2>{summary_table(run)}',
            _section("over-time", "Over time", charts.get("time", []), baseline_note),
            _section("latency", "Latency", charts.get("latency", [])),
            phases_html,
            e2e_section,
            server_section,
            sink,
            workers,
            errors_section(run),
            exceptions_section(run),
            events_section(run),
            metadata_section(run),
            f"<footer>Built by loadkit {escape(__version__)} from {sources}. "
            f"Times in milliseconds; {escape(run.noun)}/s over the whole run.</footer>",
            f"</main><script>{SCRIPT}</script></body></html>\n",
        ]
    )
