"""A worker killed mid-run: `locust --master` and two `locust --worker` on loopback, against `loadkit sink`.

One worker gets SIGKILL after its first reports: the run still ends,
events.jsonl says when the worker was lost, `--check no_worker_lost` fails
the run (exit 3), and what the dead worker reported before it died stays in
the totals (metrics.jsonl == Locust's CSV == the workers' shares in run.json).
Locust marks a worker missing after about 4 silent heartbeats (1 s each), so
the run lasts long enough after the kill for the master to notice.
"""

from __future__ import annotations

import csv
import json
import signal
import time
from pathlib import Path

import pytest

from tests.integration.peers import loadkit_sink, master_and_workers, wait_for_run_start

pytestmark = pytest.mark.slow

LOCUSTFILE = str(Path(__file__).resolve().parents[2] / "locustfiles" / "smtp.py")
RUN_SECONDS = 9
KILL_AFTER = 3.5  # seconds after the run started: each worker has reported at least once (every 3 s)


def test_killed_worker_is_recorded_fails_the_check_and_keeps_its_numbers(tmp_path):
    results = tmp_path / "results"
    with loadkit_sink(tmp_path) as (url, read_stats):
        options = ["-u", "4", "-r", "4", "-t", f"{RUN_SECONDS}s", "--results", str(results), "--check", "no_worker_lost"]
        with master_and_workers(LOCUSTFILE, url, options, master_status=3) as (master, workers):
            started = wait_for_run_start(results)
            time.sleep(max(0.0, started + KILL_AFTER - time.time()))
            workers[0].send_signal(signal.SIGKILL)
            killed_at = time.time()
            out, err = master.communicate(timeout=60)
            workers[1].wait(30)
        sink = read_stats()
    assert master.returncode == 3, err[-2000:]
    assert "0 of 1 passed" in out

    (folder,) = results.iterdir()
    (verdict,) = json.loads((folder / "verdicts.json").read_text())["verdicts"]
    assert verdict["expression"] == "no_worker_lost" and verdict["status"] == "failed"
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    lost = [e for e in events if e["kind"] == "worker_lost"]
    missing = [e for e in events if e["kind"] == "worker_missing"]
    assert len(lost) == 1 and len(missing) == 1 and lost[0]["worker"] == missing[0]["worker"]
    dead = lost[0]["worker"]
    # Missing after about 4 heartbeats; recorded within a tick of that.
    assert killed_at < missing[0]["time"] < killed_at + 8
    assert started < lost[0]["time"]

    run = json.loads((folder / "run.json").read_text())
    shares = run["worker_shares"]
    assert set(shares) == {e["worker"] for e in events if e["kind"] == "worker_joined"} and len(shares) == 2
    assert shares[dead] > 0, "what the dead worker reported before it died was dropped"
    survivor = next(worker for worker in shares if worker != dead)
    assert shares[survivor] > 0

    with open(folder / "locust_stats.csv", newline="") as handle:
        locust_count = int(next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")["Request Count"])
    merged = sum(
        series["ok"] + series["failed"]
        for line in (folder / "metrics.jsonl").read_text().splitlines()
        for series in json.loads(line)["series"]
        if series["kind"] == "request"
    )
    assert merged == locust_count == sum(shares.values()) == run["requests"]
    # The sink also got what the dead worker sent after its last report (and the message in flight).
    assert sink["messages"] >= merged
    assert not [e for e in events if e["kind"] == "count_mismatch"]
