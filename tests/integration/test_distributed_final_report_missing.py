"""A worker alive but late with its final report: `locust --master` and two `locust --worker`, against `loadkit sink`.

One worker spends longer at the end of its test than the master waits for
final reports (the stop timeout plus 10 s; 1 s + 10 s here). It keeps sending
heartbeats, so it is not lost: the master records ``final_report_missing``
for it, and only for it, and `--check no_worker_lost` fails the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.peers import loadkit_sink, master_and_workers

pytestmark = pytest.mark.slow

LOCUSTFILE = str(Path(__file__).resolve().parent / "slow_final_report_locustfile.py")
STOP_TIMEOUT = 1
FINAL_REPORT_MARGIN = 10.0  # loadkit.metrics.plugin's (not imported: Locust would patch this process)
SLOW_SECONDS = STOP_TIMEOUT + FINAL_REPORT_MARGIN + 5


def test_a_late_final_report_is_recorded_missing_and_fails_the_check(tmp_path):
    results = tmp_path / "results"
    slow_file = tmp_path / "slow-worker"
    environment = {**os.environ, "SLOW_WORKER_FILE": str(slow_file), "SLOW_WORKER_SECONDS": str(SLOW_SECONDS)}
    with loadkit_sink(tmp_path) as (url, _read_stats):
        options = ["-u", "4", "-r", "4", "-t", "3s", "--stop-timeout", f"{STOP_TIMEOUT}s",
                   "--results", str(results), "--check", "no_worker_lost"]
        # The slow worker is still at its test's end when the master leaves: it is killed on the way out.
        with master_and_workers(LOCUSTFILE, url, options, worker_environment=environment,
                                master_status=3) as (master, workers):
            out, err = master.communicate(timeout=90)
            master_done = time.time()
            for worker in workers:  # the prompt one leaves with the master; the slow one is killed
                try:
                    worker.wait(10)
                except subprocess.TimeoutExpired:
                    worker.send_signal(signal.SIGKILL)
    assert master.returncode == 3, err[-2000:]
    assert "0 of 1 passed" in out
    slow = slow_file.read_text()

    (folder,) = results.iterdir()
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    missing = [e for e in events if e["kind"] == "final_report_missing"]
    assert [e["worker"] for e in missing] == [slow], events
    assert missing[0]["detail"].startswith(f"no final report within {STOP_TIMEOUT + FINAL_REPORT_MARGIN:.0f} s")
    assert not [e for e in events if e["kind"] in ("worker_lost", "worker_missing")]
    stopped = next(e for e in events if e["kind"] == "run_stopped")
    # The master waited the whole bound for it, and did not wait for the slow worker's end.
    assert stopped["time"] + STOP_TIMEOUT + FINAL_REPORT_MARGIN <= missing[0]["time"] < master_done
    (verdict,) = json.loads((folder / "verdicts.json").read_text())["verdicts"]
    assert verdict["expression"] == "no_worker_lost" and verdict["status"] == "failed"
