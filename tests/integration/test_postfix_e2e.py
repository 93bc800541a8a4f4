"""`locust -f locustfiles/postfix_e2e.py` through a real Postfix to loadkit's sink: e2e.json, probes.

Postfix is the peer: its smtpd accepts, its queue manager and smtp client
relay to the sink. What the run reports as delivered and lost is checked
against the sink's own trace log and counters and against Postfix's log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loadkit.hdr import decode, nearest_rank, percentiles_ms
from loadkit.instances import Postfix
from loadkit.report import build_report
from tests.conftest import require_root
from tests.integration.peers import loadkit_sink
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)

pytestmark = [pytest.mark.peer("postfix"), pytest.mark.slow]

LOCUSTFILE = Path(__file__).resolve().parents[2] / "locustfiles" / "postfix_e2e.py"
SENDER = "loadkit@loadkit.test"


@pytest.fixture
def postfix_peer(peer):
    peer("postfix")
    require_root("a Postfix instance")


def run_e2e(postfix: Postfix, results: Path, *extra: str, seconds: int = 4) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "-H", postfix.smtp_url, "--headless",
               "-u", "10", "-r", "10", "-t", f"{seconds}s", "--only-summary", "--results", str(results),
               "--e2e-postfix-state", str(postfix.state_dir), "--e2e-drain-timeout", "60", *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def release_held_mail(postfix: Postfix) -> None:
    """Let a Postfix started with ``defer_transports: smtp`` relay the mail it holds, now."""
    config = ["-c", str(postfix.config_dir)]
    for command in (["postconf", *config, "-e", "defer_transports ="], ["postfix", *config, "reload"],
                    ["postqueue", *config, "-f"]):
        subprocess.run(command, check=True, capture_output=True, timeout=30)


def only_folder(results: Path) -> Path:
    (folder,) = results.iterdir()
    return folder


def trace_lines(path: Path, run_ids) -> list[tuple]:
    rows = []
    for line in path.read_text().splitlines():
        run_id, source, sequence, sent_at, arrival = line.split()
        if run_id in run_ids:
            rows.append((run_id, source, int(sequence), float(sent_at), float(arrival)))
    return rows


def test_nothing_lost_and_the_histogram_is_the_sinks_arrivals(postfix_peer, instance_root):
    with Postfix(instance_root / "postfix") as postfix:
        run_e2e(postfix, instance_root / "results", "--probe", f"postfix={postfix.state_dir}", "--probe", "host")
        assert postfix.queue_size() == 0
        folder = only_folder(instance_root / "results")
        e2e = json.loads((folder / "e2e.json").read_text())
        run = json.loads((folder / "run.json").read_text())
        postfix_log = json.loads((folder / "postfix_log.json").read_text())
    sink = postfix.sink_stats()  # written when the sink stopped

    # counts, not speed (that is bench/'s): a busy machine sends few, and every one must be counted
    assert e2e["accepted"] == run["requests"] - run["failures"] == run["requests"] > 20
    assert e2e["accepted"] == e2e["delivered"] == sink["messages"] == sink["trace"]["messages"]
    assert e2e["lost"] == e2e["duplicated"] == e2e["unexpected"] == e2e["untraced"] == 0
    assert e2e["drain"]["drained"] is True
    assert e2e["clock_offset_ms"] == 0 and e2e["clock_offset_method"] == "same host"

    # the histogram holds one delay per delivered message: the sink's arrival minus the trace's send time
    histogram = decode(e2e["latency_histogram"])
    rows = trace_lines(postfix.sink.trace_log_path, set(e2e["run_ids"]))
    assert histogram.total_count == len(rows) == e2e["delivered"]
    delays_ms = np.sort([(arrival - sent) * 1000 for *_, sent, arrival in rows])
    for percentile, value in percentiles_ms(histogram, [50, 99]).items():
        # loadkit's one rank rule (nearest rank: ceil(p*N/100)), not numpy's interpolation
        exact = float(delays_ms[nearest_rank(percentile, len(delays_ms)) - 1])
        assert abs(value - exact) <= 0.002 * exact + 0.002, (percentile, value, exact)

    # Postfix's own log: every message sent on, nothing bounced
    assert postfix_log["status"] == {"sent": e2e["accepted"]}
    assert postfix_log["by_sender"] == {SENDER: {"sent": e2e["accepted"]}}
    assert postfix_log["delays_ms"]["total"]["max"] >= postfix_log["delays_ms"]["in_queue"]["max"]

    probes = [json.loads(line) for line in (folder / "probes.jsonl").read_text().splitlines()]
    queue_rows = [row for row in probes if row["probe"] == "postfix"]
    host_rows = [row for row in probes if row["probe"] == "host"]
    assert len(queue_rows) >= 3 and all("error" not in row for row in probes)
    assert {"active", "deferred", "incoming"} <= set(queue_rows[0])
    assert queue_rows[-1]["total"] == 0  # sampled once more after the drain
    assert run["started_at"] <= queue_rows[0]["time"] <= run["started_at"] + 2
    assert host_rows[0]["target_processes"] >= 2 and 0 <= host_rows[-1]["memory_percent"] <= 100

    page = build_report(folder).read_text()
    assert '<h2 id="e2e">End-to-end delivery</h2>' in page and "one clock: no clock offset" in page
    assert f'<td>Delivered</td><td class="num">{e2e["delivered"]:,}</td>' in page
    for alt in ("End-to-end delivery latency distribution", "Postfix queues over time", "Host CPU over time"):
        assert f'aria-label="{alt}' in page


def test_messages_the_sink_refuses_are_bounced_by_postfix_and_counted_lost(postfix_peer, instance_root):
    trace_log = instance_root / "own-sink-traces.log"
    with loadkit_sink(instance_root, "--trace-log", str(trace_log), "--reject", "data-end:550:0.2", "--seed", "5",
                      stop_timeout=20) as (url, _read_stats):
        with Postfix(instance_root / "postfix", relay_to=url) as postfix:
            run_e2e(postfix, instance_root / "results", "--e2e-trace-log", str(trace_log),
                    "--probe", f"postfix={postfix.state_dir}", seconds=3)
            folder = only_folder(instance_root / "results")
            e2e = json.loads((folder / "e2e.json").read_text())
            postfix_log = json.loads((folder / "postfix_log.json").read_text())
    ours = postfix_log["by_sender"][SENDER]
    assert e2e["accepted"] > 30 and e2e["lost"] > 0  # 1 in 5 refused, seeded: a handful sent loses some
    # lost == what Postfix bounced of our messages (the sink said 550 after their data)
    assert e2e["lost"] == ours["bounced"]
    assert e2e["delivered"] == ours["sent"] == e2e["accepted"] - e2e["lost"]
    assert len(e2e["lost_examples"]) == min(20, e2e["lost"])
    assert e2e["duplicated"] == 0 and e2e["drain"]["drained"] is True
