"""The baseline comparison against real runs: it flags what changed at the target, and nothing else.

Two `loadkit demo` runs of the same settings, one after the other on the
same (possibly busy) machine, must flag nothing; a run against `loadkit
sink --delay data:20ms` compared with one against the same sink without the
delay must flag its latency as worse. Locust drives the load in both.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from loadkit.report import build_report, compare_runs, load_run
from tests.integration.peers import loadkit_sink
from tests.integration.test_metrics_locust_headless import only_folder, run_locust
from tests.unit.test_report import read_glance


def demo(out: Path) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", "--duration", "10s", "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return Path(re.search(r"report written to (\S+)", result.stdout).group(1)).parent


def test_two_identical_demos_flag_nothing(tmp_path):
    first = demo(tmp_path / "first")
    second = demo(tmp_path / "second")
    changes = compare_runs(load_run(second), load_run(first))
    assert [(c.label, c.measure, c.baseline, c.current, c.note) for c in changes if c.worse] == []
    page = build_report(second, tmp_path / "compared.html", baseline=first).read_text(encoding="utf-8")
    assert read_glance(page)["worse than baseline"] == "0"
    assert 'id="settings-check">Same settings: users 20, spawn rate 10' in page
    # What was measured is still shown: the comparison table has the total, with this run's and the baseline's values.
    assert "was " in page[page.index('id="comparison"') :]


def sink_run(tmp_path: Path, *sink_options: str) -> Path:
    with loadkit_sink(tmp_path, *sink_options) as (url, read_stats):
        result = run_locust(url, tmp_path / "results", "-t", "8s")
        read_stats()
    assert result.returncode == 0, result.stderr[-2000:]
    return only_folder(tmp_path / "results")


def test_a_sink_delaying_data_by_20ms_is_flagged_as_worse_latency(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "slow").mkdir()
    plain = sink_run(tmp_path / "plain")
    slow = sink_run(tmp_path / "slow", "--delay", "data:20ms")
    worse = {(c.label, c.measure) for c in compare_runs(load_run(slow), load_run(plain)) if c.worse}
    assert {("All requests", "p50"), ("All requests", "p95")} <= worse
    # Where the time went: DATA's reply, inside the pipelined envelope (MAIL, RCPT, DATA: one round trip, one phase).
    assert ("SMTP envelope (phase)", "p50") in worse
    page = build_report(slow, tmp_path / "compared.html", baseline=plain).read_text(encoding="utf-8")
    assert int(read_glance(page)["worse than baseline"]) >= 2
