"""Charts of a run's timeline, drawn with matplotlib's Agg canvas into PNG bytes.

No pyplot: a ``Figure`` on a ``FigureCanvasAgg`` needs no display, keeps no
global state, and leaves the backend of a program that imports us alone.
"""

from __future__ import annotations

import base64
import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURE_SIZE = (9.0, 3.2)  # inches
DPI = 100
MINUTES_FROM = 600  # seconds: longer runs get a time axis in minutes
COLORS = {
    "requests": "#2b6cb0",
    "failures": "#c53030",
    "p50": "#2f855a",
    "p95": "#d69e2e",
    "p99": "#c53030",
    "users": "#553c9a",
}


def png_data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, to embed in an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _time_unit(timeline: pd.DataFrame) -> tuple[float, str]:
    """Seconds per unit of the time axis, and its label; long runs are read in minutes."""
    elapsed = timeline["elapsed"]
    if len(elapsed) and elapsed.iloc[-1] >= MINUTES_FROM:
        return 60.0, "Time since start (min)"
    return 1.0, "Time since start (s)"


def _legend(axes) -> None:
    # Above the plot, right of the title: never over a line.
    axes.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, ncols=3, borderaxespad=0.2)


def _render(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No "Software" stamp: the same data gives the same bytes.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _figure(title: str, timeline: pd.DataFrame, y_label: str):
    """A figure with one axes; every chart spans the whole run, so their time axes line up."""
    scale, x_label = _time_unit(timeline)
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    axes = figure.add_subplot()
    end = timeline["elapsed"].iloc[-1] / scale if len(timeline) else 0
    if end > 0:
        axes.set_xlim(0, end)
    axes.set_title(title, loc="left", fontsize=11)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(True, color="#e2e8f0", linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure, axes, scale


def throughput_chart(timeline: pd.DataFrame) -> bytes | None:
    """Requests/s and failures/s per second; None when there are no rates to draw."""
    rates = timeline.dropna(subset=["requests_per_s"])
    if rates.empty:
        return None
    figure, axes, scale = _figure("Throughput", timeline, "Per second")
    x = rates["elapsed"] / scale
    axes.plot(x, rates["requests_per_s"], color=COLORS["requests"], linewidth=1.5, label="Requests/s")
    axes.plot(x, rates["failures_per_s"], color=COLORS["failures"], linewidth=1.2, label="Failures/s")
    axes.set_ylim(bottom=0)
    _legend(axes)
    return _render(figure)


def latency_chart(timeline: pd.DataFrame, title: str = "Response time percentiles") -> bytes | None:
    """p50/p95/p99 in ms; None when no row has a percentile (a run with no requests)."""
    names = [name for name in ("p50", "p95", "p99") if timeline[name].notna().any()]
    if not names:
        return None
    figure, axes, scale = _figure(title, timeline, "Response time (ms)")
    x = timeline["elapsed"] / scale
    for name in names:
        # Points where Locust wrote "N/A" stay gaps in the line, not zeros.
        axes.plot(x, timeline[name], color=COLORS[name], linewidth=1.5, label=name, marker="." if len(x) < 30 else None)
    axes.set_ylim(bottom=0)
    _legend(axes)
    return _render(figure)


def users_chart(timeline: pd.DataFrame) -> bytes | None:
    """Running users over time; None when the history has no "User Count"."""
    users = timeline.dropna(subset=["users"])
    if users.empty:
        return None
    figure, axes, scale = _figure("Users", timeline, "Users")
    x = users["elapsed"] / scale
    axes.step(x, users["users"], where="post", color=COLORS["users"], linewidth=1.5)
    axes.set_ylim(bottom=0)
    axes.yaxis.get_major_locator().set_params(integer=True)
    return _render(figure)
