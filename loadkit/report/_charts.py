"""The report's charts, drawn with matplotlib's SVG canvas into inline SVG.

No pyplot: a ``Figure`` on a ``FigureCanvasSVG`` needs no display, keeps no
global state, and leaves the backend of a program that imports us alone.

Each chart is drawn twice from one figure: wide for a desktop, and narrow,
with larger text and its panels stacked, for a phone (the page shows one of
the two by the width of the screen). Text stays text, so it scales with its
box. Points carry an SVG ``<title>``: a browser shows the value on hover.

Every chart takes this run's data and, optionally, a baseline's, drawn
over it in grey dashes: the two runs read on the same axes. Each function
returns None when there is nothing to draw.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import AutoLocator, FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from loadkit.hdr import Distribution

WIDE = (10.0, 3.3)  # inches
SHORT = (10.0, 2.4)
TALL = (10.0, 4.0)
DPI = 72  # SVG's own unit: one point is one unit of the drawing
NARROW_WIDTH = 5.0  # inches: a phone's column (360 units for about 350 px)
NARROW_TEXT = 1.3  # text this much larger on the narrow drawing, so a phone shows it at 10 px or more
NARROW_PANEL_HEIGHT = 3.2  # inches per stacked panel
NARROW_TITLE_CHARS = 40  # a longer title goes on two lines
MAX_HOVER_POINTS = 100  # per series: enough to read the line, few enough to keep the page light
RASTER_POINTS = 300  # a scatter of more points is drawn as an image inside the SVG: a few KB, not 100 bytes a point
RASTER_DPI = 144  # sharp on a screen of twice the CSS pixels
SVG_PARAMS = {"svg.fonttype": "none", "svg.hashsalt": "loadkit", "font.family": "DejaVu Sans"}
# matplotlib's ids name every group ("line2d_3"); only the clip paths' and markers' are referred to.
UNUSED_ID = re.compile(r' id="(?![pm][0-9a-f]{10}")[^"]*"')
METADATA = re.compile(r"<metadata>.*?</metadata>", re.DOTALL)
BETWEEN_TAGS = re.compile(r">\s+<")
MINUTES_FROM = 600  # seconds: longer runs get a time axis in minutes
HOURS_FROM = 4 * 3600
MAX_NAMES = 8  # lines per chart; more names would be unreadable
COLORS = {
    "ok": "#2b6cb0",
    "failed": "#c53030",
    "p50": "#2f855a",
    "p95": "#d69e2e",
    "p99": "#c53030",
    "users": "#553c9a",
    "baseline": "#718096",
    "event": "#c05621",
    "grid": "#e2e8f0",
}
SERIES_COLORS = ("#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#c53030", "#319795", "#d53f8c", "#744210")
CODE_COLORS = ("#c53030", "#dd6b20", "#d69e2e", "#805ad5", "#3182ce", "#319795", "#d53f8c", "#718096", "#a0aec0")
NINES = (0, 1, 2, 3, 4, 5)  # percentile axis ticks: 0%, 90%, 99%, 99.9%, ...
BASELINE_STYLE = {"color": COLORS["baseline"], "linestyle": (0, (4, 2)), "linewidth": 1.2}


@dataclass
class Drawing:
    """One chart as two inline ``<svg>`` elements: for a wide screen and for a phone."""

    wide: str
    narrow: str


def _figure(size) -> Figure:
    return Figure(figsize=size, dpi=DPI, layout="constrained")


def hover(axes, x, y, labels) -> None:
    """Say what each point is when the pointer rests on it (an SVG <title>); at most MAX_HOVER_POINTS of them."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if len(keep) > MAX_HOVER_POINTS:
        keep = keep[np.linspace(0, len(keep) - 1, MAX_HOVER_POINTS).astype(int)]
    labels = list(labels)
    axes.figure.__dict__.setdefault("_hover", []).append((axes, x[keep], y[keep], [labels[i] for i in keep]))


def _svg(figure: Figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(SVG_PARAMS):
        # Lay out once, then draw once: savefig with a layout engine would draw twice and lay out twice.
        engine = figure.get_layout_engine()
        engine.execute(figure)
        figure.set_layout_engine("none")
        # No date stamp: the same data gives the same bytes.
        figure.savefig(buffer, format="svg", dpi=RASTER_DPI, metadata={"Date": None})
        figure.set_layout_engine(engine)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    width, height = figure.get_size_inches() * DPI
    points = []
    for axes, x, y, labels in figure.__dict__.get("_hover", ()):
        if not len(x):
            continue
        where = axes.transData.transform(np.column_stack([x, y]))
        for (px, py), label in zip(where, labels):
            if 0 <= px <= width and 0 <= py <= height:
                points.append(f'<circle cx="{px:.1f}" cy="{height - py:.1f}" r="4"><title>{escape(label)}</title></circle>')
    if points:
        text = text.replace("</svg>", f'<g class="hover" fill="none" pointer-events="all">{"".join(points)}</g></svg>')
    text = re.sub(r'<svg [^>]*?(viewBox="[^"]*")[^>]*>', r'<svg xmlns="http://www.w3.org/2000/svg" \1 role="img">', text, count=1)
    text = METADATA.sub("", UNUSED_ID.sub("", text))
    return BETWEEN_TAGS.sub("><", text).strip()


def _stack_panels(figure: Figure) -> int:
    """Panels side by side go one under the other; returns how many rows there are then."""
    panels = [axes for axes in figure.axes if axes.get_subplotspec() is not None]
    columns = max((axes.get_subplotspec().get_gridspec().ncols for axes in panels), default=1)
    rows = max((axes.get_subplotspec().get_gridspec().nrows for axes in panels), default=1)
    if columns <= 1:
        return rows
    grid = figure.add_gridspec(len(panels), 1)
    for index, axes in enumerate(panels):
        axes.set_subplotspec(grid[index])
    return len(panels)


def _narrow(figure: Figure) -> None:
    """The same chart for a phone: narrower, larger text, fewer ticks, panels stacked, legends inside."""
    rows = _stack_panels(figure)
    figure.set_size_inches(NARROW_WIDTH, max(figure.get_size_inches()[1], NARROW_PANEL_HEIGHT * rows))
    for text in figure.findobj(Text):
        text.set_fontsize(text.get_fontsize() * NARROW_TEXT)
    for axes in figure.axes:
        title = axes.get_title(loc="left")
        if len(title) > NARROW_TITLE_CHARS:
            axes.set_title(textwrap.fill(title, NARROW_TITLE_CHARS), loc="left")
        if isinstance(axes.xaxis.get_major_locator(), (AutoLocator, MaxNLocator)):
            axes.xaxis.set_major_locator(MaxNLocator(4))
        elif isinstance(axes.xaxis.get_major_locator(), FixedLocator):  # names or percentiles: slanted, not overlapping
            for label in axes.get_xticklabels():
                label.set_rotation(35)
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
        legend = axes.get_legend()
        if legend is not None and legend.get_bbox_to_anchor().y0 >= axes.bbox.y1 - 1:
            handles, labels = axes.get_legend_handles_labels()
            axes.legend(handles, labels, loc="best", frameon=True, framealpha=0.85, edgecolor="#e2e8f0",
                        fontsize=8 * NARROW_TEXT, ncols=2, handlelength=1.5)  # fmt: skip


def _render(figure: Figure) -> Drawing:
    FigureCanvasSVG(figure)
    wide = _svg(figure)
    _narrow(figure)
    return Drawing(wide, _svg(figure))


def _axes(figure: Figure, title: str, x_label: str, y_label: str, position=111):
    axes = figure.add_subplot(*position) if isinstance(position, tuple) else figure.add_subplot(position)
    axes.set_title(title, loc="left", fontsize=11, fontweight="bold", color="#1a202c")
    axes.set_xlabel(x_label, fontsize=9, color="#4a5568")
    axes.set_ylabel(y_label, fontsize=9, color="#4a5568")
    axes.tick_params(labelsize=8, colors="#4a5568")
    axes.grid(True, color=COLORS["grid"], linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color("#a0aec0")
    return axes


def _legend(axes, columns: int = 4) -> None:
    # Above the plot, right of the title: never over a line.
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        axes.legend(
            loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, ncols=min(columns, len(handles)),
            borderaxespad=0.2, fontsize=8, handlelength=1.8,
        )  # fmt: skip


def _legend_inside(axes, location: str) -> None:
    """For the narrow panels, where a legend above would run into the title."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc=location, frameon=True, framealpha=0.9, edgecolor="#e2e8f0", fontsize=8, handlelength=1.8)


def _time_scale(*timelines: pd.DataFrame | None) -> tuple[float, str, float]:
    """Seconds per unit of the time axis, its label, and the end of the longest run in those units."""
    end = max((float(t["elapsed"].max()) for t in timelines if t is not None and len(t)), default=0.0)
    if end >= HOURS_FROM:
        scale, label = 3600.0, "Time since start (h)"
    elif end >= MINUTES_FROM:
        scale, label = 60.0, "Time since start (min)"
    else:
        scale, label = 1.0, "Time since start (s)"
    return scale, label, end / scale


def _time_axes(title: str, y_label: str, *timelines, size=WIDE):
    scale, x_label, end = _time_scale(*timelines)
    figure = _figure(size)
    axes = _axes(figure, title, x_label, y_label)
    if end > 0:
        axes.set_xlim(0, end)
    return figure, axes, scale


def _mark_events(axes, events_elapsed: list[float], scale: float) -> None:
    for index, elapsed in enumerate(events_elapsed):
        axes.axvline(elapsed / scale, color=COLORS["event"], linewidth=0.9, linestyle=":", label="integrity event" if index == 0 else None)


CHANGE_COLOR = "#2c7a7b"  # apart from every series and the integrity events' orange


def _mark_changes(axes, changes, scale: float) -> None:
    """A dashed vertical line, labelled, at each (elapsed seconds, label) change made to the target during
    the run (the sink's faults, by its control port): what the lines do after it is that change's doing."""
    for index, (elapsed, label) in enumerate(changes):
        x = elapsed / scale
        axes.axvline(x, color=CHANGE_COLOR, linewidth=1.1, linestyle=(0, (5, 2)), label="change" if index == 0 else None)
        axes.text(x, 0.97, _short(label, 40), transform=axes.get_xaxis_transform(), rotation=90, ha="right", va="top",
                  fontsize=7.5, color=CHANGE_COLOR, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
                  clip_on=True)  # a change outside the run's span leaves no label beside the axes


def _spans(rates: pd.DataFrame) -> np.ndarray:
    """Edges of the intervals on the time axis, each over its real span: a first or last second
    cut short (``seconds`` below the interval's width) stays short instead of drawn as a whole one."""
    starts = rates["elapsed"].to_numpy(dtype=float)
    step = float(np.median(np.diff(starts))) if len(starts) > 1 else 1.0
    edges = np.append(starts, starts[-1] + step)
    if "seconds" in rates:
        seconds = rates["seconds"].to_numpy(dtype=float)
        edges[-1] = starts[-1] + seconds[-1]
        if len(starts) > 1:
            edges[0] = max(starts[0], starts[1] - seconds[0])
    return edges


def throughput_chart(timeline: pd.DataFrame, noun: str, baseline: pd.DataFrame | None = None, events_elapsed=(),
                     changes=()) -> Drawing | None:
    """ok and failed per second over time, each interval drawn over its real span."""
    rates = timeline.dropna(subset=["ok_per_s"]) if len(timeline) else timeline
    if rates is None or rates.empty:
        return None
    figure, axes, scale = _time_axes("Throughput", f"{noun}/s", timeline, baseline)
    edges = _spans(rates) / scale
    ok, failed = rates["ok_per_s"].to_numpy(dtype=float), rates["failed_per_s"].fillna(0).to_numpy(dtype=float)
    axes.stairs(ok, edges, color=COLORS["ok"], linewidth=1.4, label="ok", baseline=None)
    axes.stairs(failed, edges, color=COLORS["failed"], linewidth=1.2, label="failed", baseline=None)
    unit = _unit(scale)
    middles = (edges[:-1] + edges[1:]) / 2
    hover(axes, middles, ok, [f"{a:g}–{b:g} {unit}: {_thousands(o)} ok, {_thousands(f)} failed {noun}/s"
                              for a, b, o, f in zip(np.round(edges[:-1], 2), np.round(edges[1:], 2), ok, failed)])  # fmt: skip
    if baseline is not None and len(baseline):
        base = baseline.dropna(subset=["ok_per_s"])
        base_edges = _spans(base) / scale
        axes.stairs(base["ok_per_s"].to_numpy(dtype=float), base_edges, label="baseline ok", baseline=None, **BASELINE_STYLE)
        if base["failed_per_s"].fillna(0).gt(0).any():
            axes.stairs(base["failed_per_s"].fillna(0).to_numpy(dtype=float), base_edges, label="baseline failed", baseline=None,
                        **{**BASELINE_STYLE, "color": "#feb2b2"})  # fmt: skip
    _mark_events(axes, list(events_elapsed), scale)
    _mark_changes(axes, changes, scale)
    axes.set_xlim(0, max(edges[-1], axes.get_xlim()[1]))
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_formatter(FuncFormatter(_thousands))
    _legend(axes, 5)
    return _render(figure)


def _unit(scale: float) -> str:
    return {1.0: "s", 60.0: "min", 3600.0: "h"}.get(scale, "s")


def users_chart(timeline: pd.DataFrame, baseline: pd.DataFrame | None = None) -> Drawing | None:
    """Running users over time."""
    users = timeline.dropna(subset=["users"]) if len(timeline) else timeline
    if users is None or users.empty:
        return None
    figure, axes, scale = _time_axes("Users", "users", timeline, baseline, size=SHORT)
    axes.step(users["elapsed"] / scale, users["users"], where="post", color=COLORS["users"], linewidth=1.5, label="this run")
    hover(axes, users["elapsed"] / scale, users["users"],
          [f"{t:g} {_unit(scale)}: {u:,.0f} users" for t, u in zip(np.round(users["elapsed"] / scale, 2), users["users"])])
    if baseline is not None and len(baseline) and baseline["users"].notna().any():
        base = baseline.dropna(subset=["users"])
        axes.step(base["elapsed"] / scale, base["users"], where="post", label="baseline", **BASELINE_STYLE)
        _legend(axes)
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _render(figure)


def percentiles_chart(title: str, frame: pd.DataFrame, baseline: pd.DataFrame | None = None, changes=()) -> Drawing | None:
    """p50, p95, p99 (ms) over time for one name."""
    names = [name for name in ("p50", "p95", "p99") if name in frame and frame[name].notna().any()]
    if not names:
        return None
    figure, axes, scale = _time_axes(title, "ms", frame, baseline)
    x = frame["elapsed"] / scale
    for name in names:
        # Intervals with no request stay gaps in the line, not zeros.
        axes.plot(x, frame[name], color=COLORS[name], linewidth=1.3, label=name, marker="." if len(x) < 30 else None)
        hover(axes, x, frame[name], [f"{t:g} {_unit(scale)}: {name} {v:,.3g} ms" for t, v in zip(np.round(x, 2), frame[name])])
    if baseline is not None and len(baseline):
        for name, style in (("p95", (0, (4, 2))), ("p99", (0, (1, 1.5)))):
            if name in baseline and baseline[name].notna().any():
                axes.plot(baseline["elapsed"] / scale, baseline[name], color=COLORS["baseline"], linestyle=style, linewidth=1.2, label=f"baseline {name}")
    _mark_changes(axes, changes, scale)
    axes.set_ylim(bottom=0)
    _legend(axes, 5)
    return _render(figure)


def _thousands(value, _position=None) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 or float(value).is_integer() else f"{value:g}"


def _ms_label(value, _position=None) -> str:
    if value >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:g}"


def _curve(distribution: Distribution, max_nines: float) -> tuple[np.ndarray, np.ndarray]:
    """(nines, ms) along the percentile axis: nines = -log10(1 - p)."""
    nines = np.linspace(0, max_nines, 240)
    percentiles = 100.0 * (1.0 - 10.0 ** (-nines))
    values = np.array(distribution.percentiles(list(percentiles)), dtype=float) / 1000.0
    return nines, values


def _nines_axis(axes, top: float) -> None:
    ticks = [n for n in NINES if n <= top + 1e-9]
    axes.set_xticks(ticks)
    axes.set_xticklabels(["0%" if n == 0 else f"{100 - 10 ** (2 - n):.{max(n - 2, 0)}f}%" for n in ticks])
    axes.set_xlim(0, top)


def distribution_chart(
    distributions: dict[str, Distribution],
    baseline: dict[str, Distribution] | None = None,
    points: dict[str, list[tuple[float, float]]] | None = None,
    baseline_points: dict[str, list[tuple[float, float]]] | None = None,
) -> Drawing | None:
    """Latency histogram (log scale) and latency by percentile, from merged histograms.

    Locust's CSV has only a few percentiles per name (``points``): then only
    the percentile panel is drawn, from those points.
    """
    distributions = {k: d for k, d in list(distributions.items())[:MAX_NAMES] if d.total}
    points = {k: v for k, v in list((points or {}).items())[:MAX_NAMES] if v}
    if not distributions and not points:
        return None
    baseline = {k: d for k, d in (baseline or {}).items() if d.total}
    baseline_points = baseline_points or {}
    figure = _figure(TALL)
    if distributions:
        histogram_axes = _axes(figure, "Latency distribution", "ms (log scale)", "% of requests", 121)
        curve_axes = _axes(figure, "Latency by percentile", "percentile", "ms", 122)
    else:
        histogram_axes = None
        curve_axes = _axes(figure, "Latency by percentile", "percentile", "ms")
    colors = {label: SERIES_COLORS[i % len(SERIES_COLORS)] for i, label in enumerate([*distributions, *points])}
    top = 0.0
    if distributions:
        edges = _histogram_edges([*distributions.values(), *baseline.values()])
        for label, distribution in distributions.items():
            _histogram_line(histogram_axes, distribution, edges, color=colors[label], linewidth=1.4, label=label)
            top = max(top, min(math.log10(max(distribution.total, 1)), NINES[-1]))
        for label, distribution in baseline.items():
            if label in distributions:
                _histogram_line(histogram_axes, distribution, edges, label=f"baseline {label}" if len(distributions) > 1 else "baseline", **BASELINE_STYLE)
        histogram_axes.set_xscale("log")
        histogram_axes.set_xlim(edges[0], edges[-1])
        histogram_axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        histogram_axes.xaxis.set_major_formatter(FuncFormatter(_ms_label))
        histogram_axes.xaxis.set_minor_formatter(NullFormatter())
        histogram_axes.set_ylim(bottom=0)
        _legend_inside(histogram_axes, "upper right")
        top = max(top, 1.0)
        for label, distribution in distributions.items():
            nines, values = _curve(distribution, top)
            curve_axes.plot(nines, values, color=colors[label], linewidth=1.4, label=label)
            marks = [float(n) for n in range(math.floor(top) + 1)]
            shown = np.array(distribution.percentiles([100.0 * (1.0 - 10.0 ** -n) for n in marks]), dtype=float) / 1000.0
            hover(curve_axes, marks, shown, [f"{label}: p{100 - 10.0 ** (2 - n):.{max(int(n) - 2, 0)}f} {v:,.3g} ms" for n, v in zip(marks, shown)])
        for label, distribution in baseline.items():
            if label in distributions:
                nines, values = _curve(distribution, top)
                curve_axes.plot(nines, values, label="baseline", **BASELINE_STYLE)
    else:
        top = 4.0
        for label, pairs in points.items():
            nines = [min(-math.log10(max(1 - p / 100.0, 1e-4)), top) for p, _ in pairs]
            curve_axes.plot(nines, [v for _, v in pairs], color=colors[label], marker="o", markersize=3, linewidth=1.4, label=label)
        for label, pairs in baseline_points.items():
            if label in points:
                nines = [min(-math.log10(max(1 - p / 100.0, 1e-4)), top) for p, _ in pairs]
                curve_axes.plot(nines, [v for _, v in pairs], marker="o", markersize=2, label="baseline", **BASELINE_STYLE)
    _nines_axis(curve_axes, top)
    curve_axes.set_ylim(bottom=0)
    _legend_inside(curve_axes, "upper left")
    return _render(figure)


def _histogram_edges(distributions: list[Distribution]) -> np.ndarray:
    """Log-spaced bins over all values; for rounded samples (Locust's whole ms), one bin per value."""
    values = np.concatenate([d.lowest for d in distributions]) / 1000.0
    positive = values[values > 0]
    if not len(positive):
        return np.array([0.001, 0.002])
    lowest, highest = positive.min(), max(np.concatenate([d.highest for d in distributions]).max() / 1000.0, positive.min() * 1.1)
    exact = all(np.array_equal(d.lowest, d.highest) for d in distributions)
    distinct = np.unique(positive)
    if exact and len(distinct) <= 200:
        # Bins narrower than the rounding would leave gaps between the values: one bin around each.
        middles = np.sqrt(distinct[:-1] * distinct[1:])
        return np.concatenate([[distinct[0] / 1.05], middles, [distinct[-1] * 1.05]])
    return np.geomspace(lowest * 0.98, highest * 1.02, 70)


def _histogram_line(axes, distribution: Distribution, edges: np.ndarray, **style) -> None:
    values = (distribution.lowest + distribution.highest + 1) / 2000.0  # µs -> ms, middle of each bucket
    weights, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges, weights=distribution.counts)
    share = 100.0 * weights / max(distribution.total, 1)
    axes.stairs(share, edges, **style)


def knee_chart(knee: pd.DataFrame | None, noun: str, baseline: pd.DataFrame | None = None, bucket_seconds: float = 1) -> Drawing | None:
    """p95 and p99 of each time bucket against its throughput: where latency turns up."""
    if knee is None or knee.empty:
        return None
    per = "second" if bucket_seconds <= 1 else f"{bucket_seconds:g} s"
    figure = _figure(TALL)
    axes = _axes(figure, f"Latency against throughput (one point per {per})", f"{noun}/s", "ms")
    if baseline is not None and len(baseline):
        axes.scatter(baseline["rate"], baseline["p99"], s=10, facecolors="none", edgecolors=COLORS["baseline"], linewidths=0.7,
                     label="baseline p99", rasterized=len(baseline) > RASTER_POINTS)  # fmt: skip
    many = len(knee) > RASTER_POINTS
    axes.scatter(knee["rate"], knee["p95"], s=9, color=COLORS["p95"], alpha=0.65, linewidths=0, label="p95", rasterized=many)
    axes.scatter(knee["rate"], knee["p99"], s=9, color=COLORS["p99"], alpha=0.65, linewidths=0, label="p99", rasterized=many)
    hover(axes, knee["rate"], knee["p99"], [f"{r:,.0f} {noun}/s: p95 {a:,.3g} ms, p99 {b:,.3g} ms" for r, a, b in zip(knee["rate"], knee["p95"], knee["p99"])])
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.xaxis.set_major_formatter(FuncFormatter(_thousands))
    _legend(axes)
    return _render(figure)


def phases_chart(phases: list, baseline: list | None = None) -> Drawing | None:
    """p50, p95, p99 of each protocol phase as grouped bars, one panel per request type; a baseline's as marks."""
    phases = [row for row in phases if row.latency.get("p50") is not None]
    if not phases:
        return None
    types = list(dict.fromkeys(row.type for row in phases))
    figure = _figure(WIDE)
    base_by_key = {(row.type, row.name): row for row in (baseline or [])}
    top = max(row.latency.get("p99") or row.latency.get("p95") or 0 for row in [*phases, *(baseline or [])])
    width = 0.26
    for position, type_ in enumerate(types):
        rows = [row for row in phases if row.type == type_]
        title = f"Time per phase: {type_}" if len(types) > 1 else "Time per phase"
        axes = _axes(figure, title, "", "ms" if position == 0 else "", (1, len(types), position + 1))
        x = np.arange(len(rows))
        for offset, key in zip((-width, 0, width), ("p50", "p95", "p99")):
            axes.bar(x + offset, [row.latency.get(key) or 0 for row in rows], width * 0.92, color=COLORS[key], label=key)
            base_values = [getattr(base_by_key.get((row.type, row.name)), "latency", {}).get(key) for row in rows]
            if any(v is not None for v in base_values):
                axes.scatter(
                    x + offset, [np.nan if v is None else v for v in base_values], marker="_", s=120, linewidths=2,
                    color="#1a202c", label="baseline" if key == "p50" else None, zorder=3,
                )  # fmt: skip
        axes.set_xticks(x)
        crowded = len(rows) * len(types) > 9
        axes.set_xticklabels([row.name for row in rows], fontsize=8, rotation=35 if crowded else 0, ha="right" if crowded else "center")
        axes.set_ylim(0, top * 1.08 if top else None)
        axes.grid(False, axis="x")
        if position == len(types) - 1:
            _legend(axes)
    return _render(figure)


def reply_codes_chart(codes: pd.DataFrame | None, noun: str, timeline: pd.DataFrame | None = None) -> Drawing | None:
    """Failures per second by reply code (HTTP: by status; or error, when it has none), stacked."""
    if codes is None or codes.shape[1] <= 1:
        return None
    columns = codes_by_total(codes)
    shown = columns[: len(CODE_COLORS) - 1]
    rest = columns[len(shown):]
    title = "Failed replies by code" if noun == "msgs" else "Failed requests by status"
    figure, axes, scale = _time_axes(title, f"{noun}/s", codes, timeline)
    stacks = [codes[c].to_numpy() for c in shown]
    labels = [_short(c) for c in shown]
    if rest:
        stacks.append(codes[rest].sum(axis=1).to_numpy())
        labels.append(f"{len(rest)} others")
    axes.stackplot(codes["elapsed"] / scale, *stacks, labels=labels, colors=CODE_COLORS[: len(stacks)], alpha=0.85, linewidth=0)
    axes.set_ylim(bottom=0)
    _legend(axes, 5)
    return _render(figure)


def codes_by_total(codes: pd.DataFrame) -> list[str]:
    """The code columns, most failures first; ties by name, so a run read by seconds or by minutes
    (whose columns may come in another order) draws the same legend."""
    totals = codes.drop(columns="elapsed").sum().sort_index()
    return list(totals.sort_values(ascending=False, kind="stable").index)


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
