"""Results in, one HTML file out: load, compare, draw, write."""

from __future__ import annotations

from pathlib import Path

from loadkit.report._capacity import build_capacity_report, is_capacity_folder
from loadkit.report._charts import (
    distribution_chart,
    knee_chart,
    percentiles_chart,
    phases_chart,
    reply_codes_chart,
    throughput_chart,
    users_chart,
)
from loadkit.report._compare import compare_runs
from loadkit.report._html import Chart, render_page
from loadkit.report._locust_csv import ReportError
from loadkit.report._open_model import open_model_chart, open_model_line
from loadkit.report._progress import NoProgress
from loadkit.report._run import TOTAL_LABEL, Run, integrity_problems, load_run, locate
from loadkit.report._server_side import e2e_chart, probe_charts, sink_chart
from loadkit.results import METRICS_FILE, REPORT_FILE
from loadkit.results._events import SINK_CHANGED

DEFAULT_OUTPUT = REPORT_FILE
MAX_NAME_CHARTS = 8  # percentiles-over-time charts; the busiest names first
# A load that held other user counts than its peak for this many time buckets was ramped (a
# quick spawn at the start is not a ramp): latency against throughput then has a knee to show.
RAMP_BUCKETS = 5
# run.json keys of a rate-driven (open model) run, and of a rate that changed during it.
RATE_KEYS = ("rates", "rate_steps", "load_shape", "arrival_rates")


def load_was_varied(run: Run) -> bool:
    """Did users or the arrival rate change during the run (a ramp, steps, a rate schedule)?"""
    for key in RATE_KEYS:
        value = run.metadata.get(key)
        if isinstance(value, (list, dict)) and len(value) > 1 or isinstance(value, str) and value:
            return True
    users = run.timeline["users"].dropna() if "users" in run.timeline else None
    if users is None or users.empty:
        return False
    users = users[users > 0]
    if users.empty:
        return False
    below_peak = int((users < users.max()).sum())
    return users.nunique() >= 3 and below_peak >= RAMP_BUCKETS


def real_spans(run: Run) -> None:
    """The first time bucket starts at its whole second, the run somewhat later: rate it over the part it ran."""
    started = run.metadata.get("started_at")
    timeline = run.timeline
    if run.origin is None or "seconds" not in timeline or timeline.empty or not isinstance(started, (int, float)):
        return
    cut = float(started) - run.origin
    first = timeline.index[0]
    seconds = float(timeline.at[first, "seconds"])
    if not 0 < cut < seconds or timeline.at[first, "elapsed"] != 0:
        return
    timeline = timeline.copy()
    factor = seconds / (seconds - cut)
    for column in ("ok_per_s", "failed_per_s"):
        timeline.at[first, column] = timeline.at[first, column] * factor
    timeline.at[first, "seconds"] = seconds - cut
    run.timeline = timeline
    knee = run.knee
    if knee is not None and "elapsed" in knee and (knee["elapsed"] == 0).any():
        knee = knee.copy()
        knee.loc[knee["elapsed"] == 0, "rate"] *= factor
        run.knee = knee


def _events_elapsed(run: Run) -> list[float]:
    if run.origin is None:
        return []
    return [float(event["time"]) - run.origin for event in integrity_problems(run) if isinstance(event.get("time"), (int, float))]


def _changes_elapsed(run: Run) -> list[tuple[float, str]]:
    """(elapsed seconds, label) of each change made to the sink during the run, from events.jsonl."""
    if run.origin is None:
        return []
    return [(float(event["time"]) - run.origin, f"sink {event.get('detail') or 'changed'}") for event in run.events
            if event.get("kind") == SINK_CHANGED and isinstance(event.get("time"), (int, float))]


def _chart_plan(run: Run, baseline: Run | None) -> list[tuple[str, str, str, str, callable]]:
    """(section, key, alt text, caption, draw) for every chart this run can have."""
    base_timeline = baseline.timeline if baseline is not None else None
    plan = [
        ("time", "throughput", "Throughput over time, ok and failed", "",
         lambda: throughput_chart(run.timeline, run.noun, base_timeline, _events_elapsed(run), _changes_elapsed(run))),
        ("time", "users", "Users over time", "", lambda: users_chart(run.timeline, base_timeline)),
    ]  # fmt: skip
    counts = {row.label: row.count or 0 for row in run.requests}
    names = sorted((label for label in run.percentiles_over_time if label != TOTAL_LABEL), key=lambda label: -counts.get(label, 0))
    shown = names[:MAX_NAME_CHARTS] + ([TOTAL_LABEL] if TOTAL_LABEL in run.percentiles_over_time else [])
    for index, label in enumerate(shown):
        base = baseline.percentiles_over_time.get(label) if baseline is not None else None
        plan.append(
            ("time", f"percentiles-{index + 1}", f"Latency percentiles over time: {label}", run.percentiles_note if index == 0 else "",
             lambda label=label, base=base: percentiles_chart(f"Latency over time: {label}", run.percentiles_over_time[label], base,
                                                              _changes_elapsed(run)))
        )  # fmt: skip
    code, plural = ("reply code", "messages") if run.noun == "msgs" else ("status", "requests")
    plan.append(("time", "reply-codes", f"Failed {plural} per second by {code}", "",
                 lambda: reply_codes_chart(run.reply_codes, run.noun, run.timeline)))  # fmt: skip
    if baseline is not None and baseline.reply_codes is not None:
        plan.append(
            ("time", "baseline-reply-codes", f"Baseline: failed {plural} per second by {code}", f"Baseline {baseline.label}.",
             lambda: reply_codes_chart(baseline.reply_codes, baseline.noun, baseline.timeline))
        )  # fmt: skip
    plan.append(
        ("latency", "distribution", "Latency distribution and latency by percentile", _distribution_caption(run),
         lambda: distribution_chart(
             run.distributions, baseline.distributions if baseline else None,
             run.percentile_points, baseline.percentile_points if baseline else None)),
    )  # fmt: skip
    if load_was_varied(run):
        # A fixed load has no saturation knee to find: its points are one cloud.
        plan.append(
            ("latency", "knee", "p95 and p99 latency against throughput", "Where the points turn up, the target stopped keeping up.",
             lambda: knee_chart(run.knee, run.noun, baseline.knee if baseline else None, run.bucket_seconds))
        )  # fmt: skip
    plan.append(("phases", "phases", "Latency per protocol phase", "", lambda: phases_chart(run.phases, baseline.phases if baseline else None)))
    open_model = run.open_model
    if open_model is not None:
        plan.append(("time", "open-model", "Offered, sent and dropped arrivals per second", open_model_line(open_model),
                     lambda: open_model_chart(open_model)))
    side = run.server_side
    if side is not None and side.e2e_distribution is not None:
        plan.append(("e2e", "e2e-distribution", "End-to-end delivery latency distribution and by percentile",
                     "From the sink's arrival of each delivered message minus its send time.", lambda: e2e_chart(side)))
    sink = run.metadata.get("sink")
    if isinstance(sink, dict):
        plan.append(("sink", "sink-delay", "Delivery delay measured by the sink: distribution and by percentile",
                     "The sink's arrival of each traced message minus its send time.", lambda: sink_chart(sink)))  # fmt: skip
    if side is not None and side.probes is not None:
        for key, alt, drawing in probe_charts(side, run.origin, run.timeline):
            # under the client's charts, on their time axis
            plan.append(("time", key, alt, "Sampled by the probes once a second.", lambda drawing=drawing: drawing))
    return plan


def _distribution_caption(run: Run) -> str:
    right = "Right: the latency below which each share of requests completed."
    if run.source == METRICS_FILE:
        return f"From the run's merged histograms. {right}"
    if run.distributions:
        return f"From Locust's response times, which it rounds (whole ms below 100 ms, then 2 significant digits). {right}"
    return "From the few percentiles Locust's CSV keeps per name."


def draw_charts(run: Run, baseline: Run | None = None, progress=None) -> dict[str, list[Chart]]:
    progress = progress or NoProgress()
    plan = _chart_plan(run, baseline)
    charts: dict[str, list[Chart]] = {}
    for done, (section, key, alt, caption, draw) in enumerate(plan):
        drawing = draw()
        if drawing is not None:
            charts.setdefault(section, []).append(Chart(key, drawing, alt, caption))
        progress.update((done + 1) / len(plan))
    return charts


def _check_writable(target: Path) -> None:
    if target.is_dir():
        raise ReportError(f"cannot write {target}: Is a directory")
    if not target.parent.is_dir():
        raise ReportError(f"cannot write {target}: No such file or directory ({target.parent} is missing)")


def build_report(
    results: str | Path,
    output: str | Path | None = None,
    baseline: str | Path | None = None,
    verdicts: list[dict] | None = None,
    progress=None,
) -> Path:
    """Write the HTML report of a results folder (or Locust ``--csv`` prefix, or ``--json-file``) and return its path.

    ``output`` defaults to ``report.html`` in the results folder. ``baseline``
    is another run to compare with. ``verdicts`` (dicts with expression,
    value, limit, passed) replace those of the folder's verdicts.json.
    Raises ``ReportError`` (a one-line message) for results or an output that cannot be used.
    """
    progress = progress or NoProgress()
    if is_capacity_folder(results):  # a capacity search: its own chapter, not one run's
        if output is not None:
            _check_writable(Path(output))
        return build_capacity_report(results, output)
    # Bad input fails here, before minutes of reading, not after.
    locate(results)
    if baseline is not None:
        locate(baseline)
    if output is not None:
        _check_writable(Path(output))
    progress.stage(f"reading {results}")
    run = load_run(results, progress.update)
    base = None
    if baseline is not None:
        progress.stage(f"reading baseline {baseline}")
        base = load_run(baseline, progress.update)
    if verdicts is not None:
        run.verdicts = list(verdicts)
    real_spans(run)
    if base is not None:
        real_spans(base)
    changes = compare_runs(run, base) if base is not None else None
    progress.stage("drawing charts")
    charts = draw_charts(run, base, progress)
    target = Path(output) if output is not None else run.folder / DEFAULT_OUTPUT
    progress.stage(f"writing {target}")
    page = render_page(run, charts, base, changes)
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as error:
        raise ReportError(f"cannot write {target}: {error.strerror or error}") from None
    progress.done(f"wrote {target}")
    return target
