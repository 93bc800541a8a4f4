"""Workers still in the middle of messages when a run ends: `locust --master` and two `locust --worker`
against Postfix's smtp-sink answering DATA a second late (``-w 1``).

Locust's master quits its workers and gives their last stats half a second;
here every user is up to a second away from its end-of-data reply when the
run ends, so the workers' last reports come later than that. The master waits
for each worker's final report: Locust's count, loadkit's merged count and
the workers' shares all equal the messages smtp-sink received, and
``no_worker_lost`` passes. (Without the wait the master counted 0, then 12,
of the 16 messages smtp-sink received in two runs, and the check passed.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.peers import PostfixSink, locust_and_merged_counts, run_master_and_workers

pytestmark = [pytest.mark.peer("smtp-sink"), pytest.mark.slow]

LOCUSTFILE = str(Path(__file__).resolve().parents[2] / "locustfiles" / "smtp.py")
DATA_DELAY = 1  # seconds smtp-sink waits before it answers DATA


def test_master_counts_what_its_workers_finished_after_the_run_ended(tmp_path):
    results = tmp_path / "results"
    sink = PostfixSink(options=("-w", str(DATA_DELAY)))  # answers DATA a second late
    try:
        master = run_master_and_workers(
            LOCUSTFILE, f"smtp://{sink.url}",
            ["-u", "4", "-r", "4", "-t", "4s", "--results", str(results), "--check", "no_worker_lost"],
            timeout=120,
        )
    finally:
        counts = sink.stop()
    assert master.returncode == 0, master.stderr[-2000:]
    assert "1 of 1 passed" in master.stdout

    (folder,) = results.iterdir()
    locust_count, merged = locust_and_merged_counts(folder)
    run = json.loads((folder / "run.json").read_text())
    assert locust_count == merged == run["requests"] == sum(run["worker_shares"].values()) == counts["messages"] > 0
    assert len(run["worker_shares"]) == 2 and min(run["worker_shares"].values()) > 0
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["kind"] in ("final_report_missing", "worker_lost", "count_mismatch")]
