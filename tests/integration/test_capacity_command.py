"""`loadkit capacity` against `loadkit sink`: a ceiling we can compute, and a generator pushed past its CPU.

The ceiling is the client's: 10 sessions, each message held 100 ms by the
sink's DATA delay, so at most 10 / 0.1 = 100 messages/s; above it arrivals
queue and their corrected latency grows with every second of a step. On a
busy machine a message holds its session longer than the delay, so the
ceiling the run really had is the sessions over the mean service time the
steps measured (done minus sent).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.hdr import decode, merge_into, new_histogram
from tests.integration.peers import loadkit_sink

pytestmark = pytest.mark.slow

KEPT = str(Path(__file__).with_name("kept_connection_locustfile.py"))
CPU_BOUND = str(Path(__file__).with_name("cpu_bound_locustfile.py"))


def capacity(url: str, results: Path, *options: str, timeout: float = 400,
             locustfile: str = KEPT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "loadkit", "capacity", "-f", locustfile, "-H", url, "--results", str(results),
               *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def mean_service_seconds(folder: Path) -> float:
    """The mean time a message held its session (the "service" phase), over every step of the search."""
    merged = new_histogram()
    for metrics in folder.glob("step-*/2*/metrics.jsonl"):
        for line in metrics.read_text().splitlines():
            for series in json.loads(line)["series"]:
                if series["kind"] == "phase" and series["name"] == "service" and series.get("histogram"):
                    merge_into(merged, decode(series["histogram"]))
    assert merged.get_total_count() > 0, folder
    return merged.get_mean_value() / 1e6


def test_capacity_finds_the_ceiling_of_sessions_over_delay_within_ten_percent(tmp_path):
    sessions, delay = 10, 0.1
    ceiling = sessions / delay
    with loadkit_sink(tmp_path, "--delay", f"data:{delay * 1000:g}ms") as (url, read_stats):
        result = capacity(url, tmp_path / "results", "-u", str(sessions), "--slo", "p50<150ms",
                          "--slo", "error_ratio<1%", "--start", "25", "--step", "x2", "--step-time", "8s",
                          "--confirm", "10s", "--max-steps", "12", "--expect", str(0.5 * ceiling))
        read_stats()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "capacity:" in result.stdout
    (folder,) = (tmp_path / "results").iterdir()
    found = json.loads((folder / "capacity.json").read_text())
    rate = found["verdict"]["capacity"]
    service = mean_service_seconds(folder)
    assert delay <= service < 2 * delay, service  # the sink's delay holds each message, and not much else does
    ceiling = sessions / service  # the ceiling this run really had (a busy machine's slow messages included)
    achieved = max(step["result"]["achieved"] for step in found["steps"])
    assert achieved <= 1.05 * ceiling, (achieved, ceiling)  # no step sent faster than its sessions serve
    assert abs(rate - ceiling) <= 0.10 * ceiling, (rate, ceiling, service, result.stdout)
    assert found["verdict"]["status"] == "capacity"
    junit = (folder / "junit.xml").read_text()
    assert junit.count("<testcase") == len(found["steps"]) + 1
    assert len(list(folder.glob("step-*/2*/metrics.jsonl"))) == len(found["steps"])


def test_a_generator_past_its_cpu_exits_3_generator_limited(tmp_path):
    with loadkit_sink(tmp_path) as (url, read_stats):
        # 2 ms of CPU a message: one core sends ~500/s at most; 2000/s are asked
        result = capacity(url, tmp_path / "results", "-u", "20", "--slo", "p99<5s", "--start", "2000",
                          "--step-time", "6s", "--confirm", "6s", "--max-steps", "3", locustfile=CPU_BOUND)
        read_stats()
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert "generator-limited" in result.stdout
    (folder,) = (tmp_path / "results").iterdir()
    found = json.loads((folder / "capacity.json").read_text())
    assert found["verdict"]["status"] == "generator-limited" and found["verdict"]["capacity"] is None
