"""A worker killed mid-run: `locust --master` and two `locust --worker` on loopback, against `loadkit sink`.

One worker gets SIGKILL after its first reports: the run still ends,
events.jsonl says when the worker was lost, `--check no_worker_lost` fails
the run (exit 3), and what the dead worker reported before it died stays in
the totals (metrics.jsonl == Locust's CSV == the workers' shares in run.json).

The kill waits for what it needs, not for a number of seconds: the master has
had a report from each worker (a busy machine can delay the first one well
past its 3 s interval). Locust marks a worker missing after about 4 silent
heartbeats (1 s each), so the run lasts long enough after the kill for the
master to notice, and how late that may come is counted in the master's
heartbeats as the survivor's reached it.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.integration.peers import (
    heartbeat_gaps,
    loadkit_sink,
    locust_and_merged_counts,
    master_and_workers,
    master_log_locustfile,
    read_master_log,
    wait_for_reports,
    wait_for_run_start,
)

pytestmark = pytest.mark.slow

LOCUSTFILE = str(Path(__file__).resolve().parents[2] / "locustfiles" / "smtp.py")
# The kill comes once both workers have reported requests (3.1 s after the start on a quiet machine, 4 s and
# more under a CPU burner on both cores); the master then needs HEARTBEAT_LIVENESS + 1 heartbeat ticks to mark
# it missing (4.7 s measured): room for both, doubled.
RUN_SECONDS = 16
# Missing after HEARTBEAT_LIVENESS (3, Locust's) + 1 ticks of the master's heartbeat loop, counted from the last
# heartbeat (up to a tick before the kill), recorded at loadkit's next look: within HEARTBEAT_LIVENESS + 5 ticks.
MISSING_WITHIN_TICKS = 3 + 5


def test_killed_worker_is_recorded_fails_the_check_and_keeps_its_numbers(tmp_path):
    results = tmp_path / "results"
    master_log_file, master_log = master_log_locustfile(tmp_path)
    with loadkit_sink(tmp_path) as (url, read_stats):
        options = ["-u", "4", "-r", "4", "-t", f"{RUN_SECONDS}s", "--results", str(results), "--check", "no_worker_lost"]
        with master_and_workers(f"{LOCUSTFILE},{master_log_file}", url, options, master_status=3) as (
                master, workers):
            started = wait_for_run_start(results)
            wait_for_reports(master_log, 2)
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
    assert any(kind == "report" and worker == dead and at < killed_at for at, kind, worker in read_master_log(master_log))
    # A tick of the master's heartbeat loop lasts as long as the longest silence it saw from the survivor (1 s quiet).
    tick = max([1.0, *(gap for worker, gap in heartbeat_gaps(master_log).items() if worker != dead)])
    assert killed_at < missing[0]["time"] < killed_at + MISSING_WITHIN_TICKS * tick, (killed_at, missing, tick)
    stopped = next(e for e in events if e["kind"] == "run_stopped")
    assert missing[0]["time"] < stopped["time"], "the run ended before the master could notice the kill"
    assert started < lost[0]["time"]

    run = json.loads((folder / "run.json").read_text())
    shares = run["worker_shares"]
    assert set(shares) == {e["worker"] for e in events if e["kind"] == "worker_joined"} and len(shares) == 2
    assert shares[dead] > 0, "what the dead worker reported before it died was dropped"
    survivor = next(worker for worker in shares if worker != dead)
    assert shares[survivor] > 0

    locust_count, merged = locust_and_merged_counts(folder)
    assert merged == locust_count == sum(shares.values()) == run["requests"]
    # The sink also got what the dead worker sent after its last report (and the message in flight).
    assert sink["messages"] >= merged
    assert not [e for e in events if e["kind"] == "count_mismatch"]
