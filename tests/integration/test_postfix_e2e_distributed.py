"""End-to-end delivery in a distributed run: `locust --master` and two workers through a real Postfix.

Postfix is the peer that accepts and relays; loadkit's sink receives. The
master's e2e.json must count what both workers saw accepted, and match the
sink's own counters and trace log exactly; each worker's clock offset to the
sink (one host here, so near 0) is measured and applied.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from loadkit.e2e import ClockError, measure_sink_clock_offset
from loadkit.hdr import decode
from loadkit.instances import Postfix
from loadkit.report import build_report
from loadkit.urls import parse_url
from tests.integration.peers import PostfixSink, loadkit_sink, master_and_workers, run_master_and_workers
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)
from tests.integration.test_postfix_e2e import (  # noqa: F401  (postfix_peer: fixture)
    LOCUSTFILE,
    postfix_peer,
    release_held_mail,
    trace_lines,
)

# The sink reads its clock between our send and our receive, so on one host (true offset 0) the
# measured offset is off by at most half the round trip it was measured with, however busy the machine.
ROUNDING_MS = 0.002  # the sink says its clock, and e2e.json keeps offsets and round trips, rounded to the microsecond


def test_noop_clock_of_a_real_sink_on_this_host_is_within_half_its_round_trip(tmp_path):
    with loadkit_sink(tmp_path) as (url, _read_stats):
        clock = measure_sink_clock_offset(*parse_url(url).address, samples=5)
    assert clock.samples == 5 and clock.round_trip_ms > 0
    assert abs(clock.offset_ms) <= clock.round_trip_ms / 2 + ROUNDING_MS, clock


@pytest.mark.peer("smtp-sink")
def test_a_server_without_noop_clock_is_a_clear_error():
    sink = PostfixSink()  # Postfix's smtp-sink: a plain 250 to any NOOP
    try:
        with pytest.raises(ClockError, match="did not say its clock"):
            measure_sink_clock_offset("127.0.0.1", sink.port, samples=2, timeout=5)
    finally:
        sink.stop()


@pytest.mark.slow
@pytest.mark.peer("postfix")
def test_two_workers_nothing_lost_offsets_measured(postfix_peer, instance_root):
    results = instance_root / "results"
    with Postfix(instance_root / "postfix") as postfix:
        master = run_master_and_workers(
            str(LOCUSTFILE), postfix.smtp_url,
            ["-u", "8", "-r", "8", "-t", "5s", "--results", str(results),
             "--e2e-postfix-state", str(postfix.state_dir), "--e2e-drain-timeout", "60"],
            timeout=150,
        )
        err = master.stderr
        assert master.returncode == 0, err[-3000:]
        assert postfix.queue_size() == 0
        (folder,) = results.iterdir()
        e2e = json.loads((folder / "e2e.json").read_text())
        run = json.loads((folder / "run.json").read_text())
    sink = postfix.sink_stats()  # written when the sink stopped
    print(f"counted: locust {run['requests']} accepted {e2e['accepted']} delivered {e2e['delivered']} "
          f"sink {sink['messages']}")

    assert e2e["accepted"] == run["requests"] - run["failures"] == run["requests"] > 20  # counts, not speed
    assert e2e["accepted"] == e2e["delivered"] == sink["messages"] == sink["trace"]["messages"]
    assert e2e["lost"] == e2e["duplicated"] == e2e["unexpected"] == e2e["untraced"] == 0
    assert e2e["drain"]["drained"] is True

    rows = trace_lines(postfix.sink.trace_log_path, set(e2e["run_ids"]))
    sources = {source for _, source, *_ in rows}
    assert len(sources) == 2 and len(rows) == e2e["delivered"]
    assert set(e2e["clock_offsets_ms"]) == sources and "clock_offsets_unmeasured" not in e2e, \
        e2e.get("clock_offsets_unmeasured")
    round_trips = e2e["clock_round_trips_ms"]
    assert set(round_trips) == sources
    assert all(abs(offset) <= round_trips[source] / 2 + ROUNDING_MS
               for source, offset in e2e["clock_offsets_ms"].items()), (e2e["clock_offsets_ms"], round_trips)
    assert e2e["clock_offset_method"].startswith("NTP-style")
    assert decode(e2e["latency_histogram"]).total_count == e2e["delivered"]

    page = build_report(folder).read_text()
    assert '<h2 id="e2e">End-to-end delivery</h2>' in page and "Clock offsets" in page
    assert f'<td>Delivered</td><td class="num">{e2e["delivered"]:,}</td>' in page


@pytest.mark.slow
@pytest.mark.peer("postfix")
def test_a_masters_checks_and_probes_wait_for_a_drain_that_outlasts_its_folder(postfix_peer, instance_root):
    """Postfix holds every message (defer_transports) until the master has written run.json; only then is
    the relay let go. The e2e thresholds must be checked on the e2e.json the drain ends with, and the
    queue probe's last sample must be the drained queue, not the one at the stop."""
    results = instance_root / "results"
    released = {}

    with Postfix(instance_root / "postfix", settings={"defer_transports": "smtp"}) as postfix:
        def release_when_the_folder_is_written():
            deadline = time.monotonic() + 120
            while not list(results.glob("*/run.json")) and time.monotonic() < deadline:
                time.sleep(0.05)
            (folder,) = results.iterdir()
            released["queued"] = postfix.queue_size()
            released["at"] = time.time()  # the sink's trace log stamps arrivals with this clock
            released["sink_before"] = postfix.sink.trace_log_path.read_text().count("\n")
            released["verdicts_before"] = (folder / "verdicts.json").exists()
            release_held_mail(postfix)

        releaser = threading.Thread(target=release_when_the_folder_is_written, daemon=True)
        releaser.start()
        with master_and_workers(
            str(LOCUSTFILE), postfix.smtp_url,
            ["-u", "2", "-r", "2", "-t", "3s", "--results", str(results), "--e2e-postfix-state", str(postfix.state_dir),
             "--e2e-drain-timeout", "90", "--probe", f"postfix={postfix.state_dir}",
             "--check", "e2e.lost==0", "--check", "e2e.delivered>=1", "--check", "queue_max>=1"],
            workers=1,
        ) as (master, _workers):
            out, err = master.communicate(timeout=180)
        releaser.join(timeout=60)
        (folder,) = results.iterdir()
    e2e = json.loads((folder / "e2e.json").read_text())
    verdicts = {v["expression"]: v for v in json.loads((folder / "verdicts.json").read_text())["verdicts"]}

    run = json.loads((folder / "run.json").read_text())
    arrivals = [arrival for *_, arrival in trace_lines(postfix.sink.trace_log_path, set(e2e["run_ids"]))]

    # All of it was still queued when run.json was written: nothing had reached the sink, everything
    # did after the release. (Not the queue's size then: a listing can count a message the queue
    # manager moves twice, or miss it, see loadkit.instances.count_queue_listing.)
    assert released["sink_before"] == 0 and released["queued"] > 0, released
    assert len(arrivals) == e2e["delivered"] == e2e["accepted"] == run["requests"] > 0
    assert min(arrivals) >= released["at"]
    assert released["verdicts_before"] is False
    assert master.returncode == 0, (out + err)[-3000:]
    assert e2e["drain"]["drained"] is True and e2e["lost"] == e2e["unexpected"] == 0
    assert verdicts["e2e.delivered>=1"]["measured"] == e2e["delivered"]
    assert verdicts["e2e.lost==0"]["status"] == "passed" and verdicts["e2e.lost==0"]["measured"] == 0

    queue = [json.loads(line) for line in (folder / "probes.jsonl").read_text().splitlines()]
    queue = [row for row in queue if row["probe"] == "postfix"]
    assert max(row["total"] for row in queue) > 0  # held: sampled while the drain waited
    assert queue[-1]["total"] == 0  # the last sample: after the drain
    assert verdicts["queue_max>=1"]["measured"] == max(row["total"] for row in queue)
