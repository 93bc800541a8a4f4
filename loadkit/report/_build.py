"""Results in, one HTML file out: load, compare, draw, write."""

from __future__ import annotations

from pathlib import Path

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
from loadkit.report._open_model import open_model_chart, open_model_line, read_open_model
from loadkit.report._progress import NoProgress
from loadkit.report._run import TOTAL_LABEL, Run, integrity_problems, load_run, locate
from loadkit.report._server_side import e2e_chart, probe_charts
from loadkit.results import METRICS_FILE, REPORT_FILE

DEFAULT_OUTPUT = REPORT_FILE
MAX_NAME_CHARTS = 8  # percentiles-over-time charts; the busiest names first


def _events_elapsed(run: Run) -> list[float]:
    if run.origin is None:
        return []
    return [float(event["time"]) - run.origin for event in integrity_problems(run) if isinstance(event.get("time"), (int, float))]


def _chart_plan(run: Run, baseline: Run | None) -> list[tuple[str, str, str, str, callable]]:
    """(section, key, alt text, caption, draw) for every chart this run can have."""
    base_timeline = baseline.timeline if baseline is not None else None
    plan = [
        ("time", "throughput", "Throughput over time, ok and failed", "",
         lambda: throughput_chart(run.timeline, run.noun, base_timeline, _events_elapsed(run))),
        ("time", "users", "Users over time", "", lambda: users_chart(run.timeline, base_timeline)),
    ]  # fmt: skip
    counts = {row.label: row.count or 0 for row in run.requests}
    names = sorted((label for label in run.percentiles_over_time if label != TOTAL_LABEL), key=lambda label: -counts.get(label, 0))
    shown = names[:MAX_NAME_CHARTS] + ([TOTAL_LABEL] if TOTAL_LABEL in run.percentiles_over_time else [])
    for index, label in enumerate(shown):
        base = baseline.percentiles_over_time.get(label) if baseline is not None else None
        plan.append(
            ("time", f"percentiles-{index + 1}", f"Latency percentiles over time: {label}", run.percentiles_note if index == 0 else "",
             lambda label=label, base=base: percentiles_chart(f"Latency over time: {label}", run.percentiles_over_time[label], base))
        )  # fmt: skip
    plan.append(("time", "reply-codes", "Failed replies per second by reply code", "", lambda: reply_codes_chart(run.reply_codes, run.noun, run.timeline)))
    if baseline is not None and baseline.reply_codes is not None:
        plan.append(
            ("time", "baseline-reply-codes", "Baseline: failed replies per second by reply code", f"Baseline {baseline.label}.",
             lambda: reply_codes_chart(baseline.reply_codes, baseline.noun, baseline.timeline))
        )  # fmt: skip
    plan.append(
        ("latency", "distribution", "Latency distribution and latency by percentile", _distribution_caption(run),
         lambda: distribution_chart(
             run.distributions, baseline.distributions if baseline else None,
             run.percentile_points, baseline.percentile_points if baseline else None)),
    )  # fmt: skip
    plan.append(
        ("latency", "knee", "p95 and p99 latency against throughput", "Where the points turn up, the target stopped keeping up.",
         lambda: knee_chart(run.knee, run.noun, baseline.knee if baseline else None, run.bucket_seconds))
    )  # fmt: skip
    plan.append(("phases", "phases", "Latency per protocol phase", "", lambda: phases_chart(run.phases, baseline.phases if baseline else None)))
    open_model = read_open_model(run.folder) if run.source == METRICS_FILE else None
    if open_model is not None:
        plan.append(("time", "open-model", "Offered, sent and dropped arrivals per second", open_model_line(open_model),
                     lambda: open_model_chart(open_model)))
    side = run.server_side
    if side is not None and side.e2e_distribution is not None:
        plan.append(("e2e", "e2e-distribution", "End-to-end delivery latency distribution and by percentile",
                     "From the sink's arrival of each delivered message minus its send time.", lambda: e2e_chart(side)))
    if side is not None and side.probes is not None:
        for key, alt, png in probe_charts(side, run.origin, run.timeline):
            # under the client's charts, on their time axis
            plan.append(("time", key, alt, "Sampled by the probes once a second.", lambda png=png: png))
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
        png = draw()
        if png is not None:
            charts.setdefault(section, []).append(Chart(key, png, alt, caption))
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
