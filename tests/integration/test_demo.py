"""`loadkit demo` as the README runs it, shortened: sink, load, results folder, report.

One demo run serves the tests that read its results folder: the report,
and the same metrics files as the locust command, counted against its sink.
"""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.peers import locust_and_merged_counts


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """(`loadkit demo`'s completed process, its results folder): one run for the module."""
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", "--duration", "3", "--users", "5", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = re.search(r"report written to (\S+)", result.stdout).group(1)
    return result, out / report.split("/")[-2]


@pytest.mark.slow
def test_demo_writes_results_and_report(demo_run):
    _result, folder = demo_run
    assert (folder / "report.html").is_file()
    run = json.loads((folder / "run.json").read_text())
    with open(folder / "locust_stats.csv", newline="") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) == run["requests"] == run["sink"]["messages"] > 0
    html = (folder / "report.html").read_text()
    assert html.count('<figure class="chart"') >= 2  # throughput and latency charts


@pytest.mark.slow
def test_demo_folder_has_the_metrics_files(demo_run):
    """The same results folder as the locust command, its histograms counted against the demo's sink."""
    result, folder = demo_run
    assert Path(re.search(r"-> (\S+)", result.stdout).group(1)) == folder
    assert {"run.json", "metrics.jsonl", "events.jsonl", "errors.csv", "locust_stats.csv",
            "locust_stats_history.csv"} <= {p.name for p in folder.iterdir()}
    run = json.loads((folder / "run.json").read_text())
    locust_count, recorded = locust_and_merged_counts(folder)
    assert recorded == locust_count == run["requests"] == run["sink"]["messages"] > 0
    kinds = [json.loads(line)["kind"] for line in (folder / "events.jsonl").read_text().splitlines()]
    assert kinds == ["run_started", "run_stopped"]


def test_demo_refuses_an_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", "--out", str(blocker / "sub")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot create results folder" in result.stderr


@pytest.mark.parametrize("args, expected", [
    (["--spawn-rate", "nan"], "--duration, --users and --spawn-rate must be positive"),
    (["--spawn-rate", "inf"], "--spawn-rate inf: not a finite number"),
    (["--spawn-rate", "1e9"], "must be at most 100000.0 users a second"),
    (["--users", "100000000"], "see ulimit -n"),
    (["--users", "0"], "must be positive"),
    (["--workers", "-1"], "--workers must be 0 or more"),
    (["--workers", "100000"], "--workers 100000: must be at most 256"),
    (["--duration", "nan"], "--duration 'nan'"),
    (["--duration", "-5"], "--duration '-5'"),
    (["--duration", "0"], "must be positive"),
    (["--out", ""], "--out '': give a folder"),
])
def test_demo_refuses_bad_values_in_one_line(tmp_path, args, expected):
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", *args], capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "reports").exists()  # refused before any results folder


@pytest.mark.slow
def test_ctrl_c_keeps_the_results_and_report_of_what_ran(tmp_path):
    """SIGINT mid-load: the demo stops the load, still writes run.json (interrupted) and the report,
    Locust's count equals the sink's, no traceback, exit 130."""
    process = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "demo", "--duration", "60", "--users", "4", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = process.stdout.readline()  # "sink listening on ...": the load starts now
        assert "sink listening on" in first, first + process.stderr.read()
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130, out + err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("loadkit demo: interrupted after"), err
    folder = next(tmp_path.iterdir())
    run = json.loads((folder / "run.json").read_text())
    assert run["interrupted"] is True and 0 < run["requests"] == run["sink"]["messages"]
    assert run["stopped_at"] - run["started_at"] < 30
    assert (folder / "report.html").is_file()
    assert f"the sink received {run['sink']['messages']} (interrupted)" in out


@pytest.mark.slow
def test_ctrl_c_of_a_distributed_demo_keeps_the_masters_results(tmp_path):
    """SIGINT to `loadkit demo --workers 1`: the master is asked to stop (SIGTERM), still writes
    the results folder, and the demo adds the sink's counters, marks it interrupted, exits 130."""
    process = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "demo", "--duration", "120", "--users", "2", "--workers", "1",
         "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert "sink listening on" in process.stdout.readline()
        while "sink received" not in (line := process.stdout.readline()) or " 0 msgs" in line:
            assert line, process.stderr.read()  # progress every 5 s until mail flows
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130, out + err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("loadkit demo: interrupted"), err
    folder = next(path for path in tmp_path.iterdir() if path.is_dir())
    run = json.loads((folder / "run.json").read_text())
    assert run["interrupted"] is True and 0 < run["requests"] == run["sink"]["messages"]
    assert (folder / "report.html").is_file()
