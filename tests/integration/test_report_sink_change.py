"""A sink's delay changed mid-run through its control port: real `loadkit sink --control`, a real Locust run.

The locustfile posts ``delay data:200ms`` to the sink 4 s into a 10 s run and
records the change. The results folder must hold it once, at the sink's own
time of the change; the latency must step up from there; and the report's
throughput chart must mark that moment, read off the chart against its own
hover points (one per interval, at its middle).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.report import build_report, load_run
from loadkit.report._charts import CHANGE_COLOR
from tests.conftest import free_port
from tests.integration.peers import loadkit_sink
from tests.integration.test_metrics_locust_headless import locust_aggregated, only_folder
from tests.unit.test_report_sink_changes import chart, vertical_lines

LOCUSTFILE = str(Path(__file__).with_name("sink_change_locustfile.py"))
SECONDS = 10
CHANGE_AT = 4.0  # seconds after the test starts
DELAY_MS = 200.0  # far above a loopback message's time on a busy machine


def run_locust(host: str, control_url: str, results: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "-H", host, "--headless", "-u", "2", "-r", "2",
               "-t", f"{SECONDS}s", "--only-summary", "--results", str(results)]
    environment = {**os.environ, "LOADKIT_TEST_SINK_CONTROL": control_url, "LOADKIT_TEST_CHANGE_AT": str(CHANGE_AT),
                   "LOADKIT_TEST_FAULTS": f"delay data:{DELAY_MS:g}ms"}
    return subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 90, env=environment)


def hover_points(svg: str) -> list[tuple[float, float]]:
    """(middle second, x) of each whole-second interval's hover point on the throughput chart."""
    points = []
    for x, start, end in re.findall(r'<circle cx="([\d.]+)" cy="[\d.]+" r="4"><title>([\d.]+)–([\d.]+) s:', svg):
        if float(end) - float(start) == 1:
            points.append(((float(start) + float(end)) / 2, float(x)))
    return points


def test_a_delay_changed_midway_is_recorded_and_marked_at_its_second(tmp_path):
    control_url = f"http://127.0.0.1:{free_port()}"
    with loadkit_sink(tmp_path, "--control", control_url.removeprefix("http://")) as (url, read_stats):
        result = run_locust(url, control_url, tmp_path / "results")
        sink = read_stats()
    assert result.returncode == 0, result.stderr[-3000:]
    folder = only_folder(tmp_path / "results")
    assert int(locust_aggregated(folder)["Request Count"]) == sink["messages"] > 0

    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    (changed,) = [event for event in events if event["kind"] == "sink_changed"]
    (started,) = [event for event in events if event["kind"] == "run_started"]
    (at_sink,) = sink["changes"]
    assert changed["detail"] == at_sink["what"] == f"faults: delay data:{DELAY_MS:g}ms"
    # recorded when the sink's answer came back: after the sink's own time, by a round trip
    assert at_sink["time"] <= changed["time"] <= at_sink["time"] + 1.0
    assert CHANGE_AT <= changed["time"] - started["time"] <= CHANGE_AT + 2.0

    run = load_run(folder)
    changed_at = changed["time"] - run.origin
    latency = run.percentiles_over_time["SMTP send"].dropna(subset=["p50"])
    before = latency[latency["elapsed"] + 1 <= changed_at]
    after = latency[latency["elapsed"] >= changed_at + 0.1]  # a message done there had its DATA after the change
    assert len(before) >= 2 and len(after) >= 2, latency
    assert (before["p50"] < DELAY_MS).all() and (after["p50"] >= DELAY_MS).all(), latency

    svg = chart(build_report(folder).read_text(encoding="utf-8"), "throughput")
    (x,) = vertical_lines(svg, CHANGE_COLOR)
    points = hover_points(svg)
    (first_second, first_x), (last_second, last_x) = points[0], points[-1]
    per_second = (last_x - first_x) / (last_second - first_second)
    assert x == pytest.approx(first_x + (changed_at - first_second) * per_second, abs=0.1 * per_second)
    assert f">sink faults: delay data:{DELAY_MS:g}ms</text>" in svg
