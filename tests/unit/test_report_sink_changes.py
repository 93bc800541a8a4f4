"""A change made to the sink during a run (its control port): an event in events.jsonl, a marker on the time charts.

The folder is synthetic (`make_results`): its events say the sink's delay
changed 12 s into a 20 s run. The marker must stand at 12 s on the
throughput chart, which is read off the chart itself: halfway between the
hover points of the seconds 11-12 and 12-13.
"""

from __future__ import annotations

import json
import re

import pytest

from loadkit.report import build_report, load_run
from loadkit.report._charts import CHANGE_COLOR
from loadkit.report._run import integrity_problems
from loadkit.results._events import SINK_CHANGED
from tests.unit.test_report_metrics import START, make_results

CHANGED_AT = 12.0  # seconds into the run
DETAIL = "faults: delay data:50ms"


def chart(page: str, key: str) -> str:
    """The wide drawing of chart `key`."""
    found = re.search(rf'<figure class="chart" id="chart-{key}"><div class="wide">(<svg .*?</svg>)</div>', page, re.S)
    assert found, f"no chart-{key} on the page"
    return found.group(1)


def vertical_lines(svg: str, color: str) -> list[float]:
    """x of each vertical line drawn in `color` (a legend's sample is horizontal, and left out)."""
    lines = []
    for path in re.findall(rf'<path d="([^"]*)"[^>]*stroke: {color}[;"]', svg):
        points = [tuple(map(float, point.split())) for point in re.findall(r"[ML] ([\d.]+ [\d.]+)", path)]
        if len(points) == 2 and points[0][0] == points[1][0] and points[0][1] != points[1][1]:
            lines.append(points[0][0])
    return lines


def hover_x(svg: str, title_start: str) -> float:
    (x,) = re.findall(rf'<circle cx="([\d.]+)" cy="[\d.]+" r="4"><title>{re.escape(title_start)}', svg)
    return float(x)


@pytest.fixture(scope="module")
def changed_run(tmp_path_factory):
    synthetic = make_results(tmp_path_factory.mktemp("changed") / "20261202-051500-smtp", seconds=20, per_second=20)
    with (synthetic.folder / "events.jsonl").open("a") as events:
        events.write(json.dumps({"time": START + CHANGED_AT, "kind": SINK_CHANGED, "worker": None, "detail": DETAIL}) + "\n")
    return synthetic.folder


@pytest.fixture(scope="module")
def page(changed_run) -> str:
    return build_report(changed_run).read_text(encoding="utf-8")


def test_the_throughput_chart_marks_the_change_at_its_second(page):
    svg = chart(page, "throughput")
    (x,) = vertical_lines(svg, CHANGE_COLOR)
    eleven, twelve = hover_x(svg, "11–12 s:"), hover_x(svg, "12–13 s:")  # the middles of those seconds
    assert x == pytest.approx((eleven + twelve) / 2, abs=0.2)
    assert ">sink faults: delay data:50ms</text>" in svg


def test_the_latency_charts_mark_it_too(page):
    for key in ("percentiles-1", "percentiles-2", "percentiles-3"):
        svg = chart(page, key)
        assert len(vertical_lines(svg, CHANGE_COLOR)) == 1, key
        assert ">sink faults: delay data:50ms</text>" in svg


def test_a_change_is_listed_with_the_events_but_casts_no_doubt_on_the_numbers(changed_run, page):
    run = load_run(changed_run)
    assert [event["kind"] for event in integrity_problems(run)] == ["worker_missing"]
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*sink_changed(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    assert "+12.0 s" in row and DETAIL in row and "worse" not in row and "flag" not in row


def test_without_a_change_no_chart_has_a_marker(tmp_path):
    page = build_report(make_results(tmp_path / "run", seconds=20, per_second=20).folder).read_text(encoding="utf-8")
    assert CHANGE_COLOR not in page
