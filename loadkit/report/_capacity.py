"""The chapter of a ``loadkit capacity`` folder: the verdict, the step table, and what changed with the offered rate.

A capacity folder holds capacity.json (read by `loadkit.capacity`'s reader
alone) and one ``step-NN-RATE/`` results folder per step. Its page shows the
search as a whole; each step's own folder still gets an ordinary report.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np

from loadkit import __version__
from loadkit.capacity._file import CAPACITY_FILE, CapacityFileError, read_capacity
from loadkit.capacity._search import CapacityResult
from loadkit.capacity._table import format_verdict
from loadkit.report._charts import COLORS, SERIES_COLORS, TALL, WIDE, Drawing, _axes, _figure, _legend, _render, hover
from loadkit.report._html import SCRIPT, STYLE, Chart, _table
from loadkit.report._html import _figure as figure_html
from loadkit.report._locust_csv import ReportError
from loadkit.results import REPORT_FILE

STEP_COLUMNS = (
    ("offered/s", "offered"), ("achieved/s", "achieved"), ("accepted/s", "accepted"), ("dropped", "dropped"),
    ("corrected p50", "corrected_p50"), ("p95", "corrected_p95"), ("p99", "corrected_p99"),
    ("service p50", "service_p50"), ("p95", "service_p95"), ("p99", "service_p99"),
    ("errors", "error_ratio"), ("queue/s", "queue_growth"), ("cpu %", "generator_cpu"),
)


def is_capacity_folder(results) -> bool:
    path = Path(results)
    return path.is_dir() and (path / CAPACITY_FILE).is_file()


def _cell(value, attribute: str) -> str:
    if value is None:
        return "-"
    if attribute == "error_ratio":
        return f"{value * 100:.2f}%"
    if attribute == "dropped":
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def steps_table(result: CapacityResult) -> str:
    headers = [("step", False), ("phase", True), ("rate/s", False)] + [(title, False) for title, _ in STEP_COLUMNS]
    headers += [(limit, False) for limit in result.limits]
    rows = []
    for number, step in enumerate(result.steps, 1):
        cells = [(str(number), "num"), (escape(step.phase + (" (generator-limited)" if step.generator_limited else "")),
                                        "text"), (f"{step.rate:,.4g}", "num")]
        cells += [(_cell(getattr(step.result, attribute), attribute), "num") for _, attribute in STEP_COLUMNS]
        checks = {check.expression: check for check in step.checks}
        for limit in result.limits:
            check = checks.get(limit)
            if check is None:
                mark = "-"
            elif check.error:
                mark = f'<span title="{escape(check.error)}">?</span>'
            else:
                mark = "✓" if check.passed else "✗"
            cells.append((mark, "num"))
        rows.append(("ok" if step.held else "ko", cells))
    return _table("capacity-steps", headers, rows)


def _series(result: CapacityResult, attribute: str) -> tuple[np.ndarray, np.ndarray]:
    points = sorted((step.result.offered, getattr(step.result, attribute)) for step in result.steps
                    if getattr(step.result, attribute) is not None)
    return np.array([x for x, _ in points], dtype=float), np.array([y for _, y in points], dtype=float)


def _plot(axes, result: CapacityResult, attribute: str, label: str, color: str, unit: str) -> bool:
    x, y = _series(result, attribute)
    if not len(x):
        return False
    axes.plot(x, y, marker="o", markersize=4, linewidth=1.5, color=color, label=label)
    hover(axes, x, y, [f"{label}: {value:,.1f} {unit} at {rate:,.1f}/s offered" for rate, value in zip(x, y)])
    return True


def _mark_capacity(axes, result: CapacityResult) -> None:
    verdict = result.verdict
    if verdict.capacity is not None:
        axes.axvline(verdict.capacity, color=COLORS["p50"], linewidth=1, linestyle=(0, (4, 2)))
    if verdict.failed_at is not None:
        axes.axvline(verdict.failed_at, color=COLORS["failed"], linewidth=1, linestyle=(0, (4, 2)))


@dataclass(frozen=True)
class RateChart:
    """One chart against the offered rate: the step measures it draws, and its extra reference line."""

    key: str  # element id: chart-<key>
    title: str  # also the chart's alt text
    y_label: str
    unit: str  # of the measures, in their hover text
    series: tuple[tuple[str, str, str], ...]  # (StepResult attribute, label, color), drawn in this order
    caption: str
    size: tuple[float, float] = WIDE
    zero_line: bool = False  # above it grows, below it shrinks
    diagonal: bool = False  # achieved = offered


RATE_CHARTS = (
    RateChart("capacity-latency", "p99 latency against offered rate", "p99 (ms)", "ms",
              (("corrected_p99", "corrected p99", SERIES_COLORS[0]), ("service_p99", "service p99", SERIES_COLORS[1])),
              "Corrected: from each message's intended time; service: from its actual send. Dashed: the capacity "
              "found (green) and the first rate that failed (red)."),
    RateChart("capacity-queue", "Queue growth against offered rate", "queue growth (msgs/s)", "msgs/s",
              (("queue_growth", "queue growth", SERIES_COLORS[2]),),
              "The least-squares slope of the Postfix queue's total during each step: above 0, mail piles up.",
              zero_line=True),
    RateChart("capacity-achieved", "Achieved against offered rate", "rate (messages/s)", "msgs/s",
              (("achieved", "achieved", SERIES_COLORS[0]), ("accepted", "accepted", SERIES_COLORS[2])),
              "Below the dashed diagonal the generator or the server could not keep up with the rate asked.",
              size=TALL, diagonal=True),
)


def rate_chart(result: CapacityResult, chart: RateChart) -> Drawing | None:
    """`chart` drawn from the steps of `result`; None when no step measured any of its series."""
    figure = _figure(chart.size)
    axes = _axes(figure, chart.title, "offered rate (messages/s)", chart.y_label)
    drawn = [_plot(axes, result, attribute, label, color, chart.unit) for attribute, label, color in chart.series]
    if not any(drawn):
        return None
    if chart.zero_line:
        axes.axhline(0, color="#a0aec0", linewidth=0.8)
    if chart.diagonal:
        top = max(step.result.offered for step in result.steps)
        axes.plot([0, top], [0, top], color="#a0aec0", linewidth=1, linestyle=(0, (4, 2)), label="offered")
    _mark_capacity(axes, result)
    _legend(axes)
    return _render(figure)


def capacity_charts(result: CapacityResult) -> list[Chart]:
    charts = []
    for chart in RATE_CHARTS:
        drawing = rate_chart(result, chart)
        if drawing is not None:
            charts.append(Chart(chart.key, drawing, chart.title, chart.caption))
    return charts


def render_capacity_page(result: CapacityResult, label: str) -> str:
    title = f"Capacity search: {label}"
    limits = ", ".join(result.limits) or "none"
    charts = "".join(figure_html(chart) for chart in capacity_charts(result)) if result.steps else ""
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="subtitle">limits: {escape(limits)}</p>',
        f'<h2 id="capacity">Capacity</h2><p class="verdict">{escape(format_verdict(result))}</p>',
        f'<h2 id="steps">Steps</h2>{steps_table(result) if result.steps else "<p>No step ran.</p>"}',
        f'<h2 id="capacity-charts">Against the offered rate</h2>{charts}' if charts else "",
        f"<footer>Built by loadkit {escape(__version__)} from {CAPACITY_FILE}. Rates in messages/s, "
        "latencies in milliseconds; each step's folder has its own report.</footer>",
        f"</main><script>{SCRIPT}</script></body></html>\n",
    ])


def build_capacity_report(results, output=None) -> Path:
    """report.html of a capacity folder (or `output`); ReportError for a capacity.json that cannot be read."""
    folder = Path(results)
    try:
        result = read_capacity(folder)
    except CapacityFileError as error:
        raise ReportError(str(error)) from None
    target = Path(output) if output is not None else folder / REPORT_FILE
    try:
        target.write_text(render_capacity_page(result, folder.resolve().name), encoding="utf-8")
    except OSError as error:
        raise ReportError(f"cannot write {target}: {error.strerror or error}") from None
    return target
