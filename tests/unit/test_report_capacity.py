"""`loadkit report` on a capacity folder: the verdict, the step table and the charts against the offered rate."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from loadkit.capacity import CAPACITY, SearchSettings, StepResult, search, write_capacity
from loadkit.report import build_report

CEILING = 400.0  # messages/s the simulated server keeps up with


def simulated_step(rate: float, duration: float) -> StepResult:
    """Below the ceiling: fast and no queue; above it: the queue grows by the excess and latency with it."""
    excess = max(rate - CEILING, 0.0)
    return StepResult(
        offered=rate, duration=duration, achieved=rate, accepted=min(rate, CEILING),
        corrected_p50=20.0 + excess, corrected_p95=30.0 + 5 * excess, corrected_p99=40.0 + 10 * excess,
        service_p50=15.0, service_p95=20.0, service_p99=25.0 + excess,
        error_ratio=0.0, queue_growth=excess, generator_cpu=rate / 10,
    )


@pytest.fixture
def capacity_folder(tmp_path):
    folder = tmp_path / "20261202-040000-capacity-<b>x&y"
    folder.mkdir()
    result = search(simulated_step, ["p99<200ms", "queue_growth<=0"], SearchSettings(start=50, confirm=60))
    assert result.verdict.status == CAPACITY
    write_capacity(result, folder)
    for number, step in enumerate(result.steps, 1):
        (folder / f"step-{number:02d}-{step.rate:g}").mkdir()  # each step's own results folder, not read here
    return folder, result


def test_the_page_shows_the_verdict_the_steps_and_three_charts(capacity_folder):
    folder, result = capacity_folder
    page = build_report(folder).read_text()
    assert (folder / "report.html").is_file()
    verdict = f"capacity: {result.verdict.capacity:g} messages/s"
    assert verdict in page and 350 <= result.verdict.capacity <= CEILING
    rows = re.findall(r"<tr class='(ok|ko)'>", page)
    assert len(rows) == len(result.steps) and rows.count("ko") == sum(not step.held for step in result.steps) > 0
    assert page.count("✗") >= rows.count("ko") and "✓" in page
    for alt in ("p99 latency against offered rate", "Queue growth against offered rate",
                "Achieved against offered rate"):
        assert f'aria-label="{alt}"' in page
    assert page.count("<svg") == 6  # each chart wide and narrow


def test_text_is_escaped(capacity_folder):
    folder, _result = capacity_folder
    page = build_report(folder).read_text()
    assert "<b>x&y" not in page and "&lt;b&gt;x&amp;y" in page
    assert "p99&lt;200ms" in page and "p99<200ms" not in page


def test_a_step_without_a_queue_measure_draws_no_queue_chart(tmp_path):
    def no_probe(rate, duration):
        step = simulated_step(rate, duration)
        step.queue_growth = None
        return step

    write_capacity(search(no_probe, ["p99<200ms"], SearchSettings(start=50, confirm=60)), tmp_path)
    page = build_report(tmp_path).read_text()
    assert 'aria-label="Queue growth against offered rate"' not in page
    assert 'aria-label="p99 latency against offered rate"' in page


def test_a_damaged_capacity_file_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "capacity.json").write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "loadkit", "report", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "capacity.json" in done.stderr
