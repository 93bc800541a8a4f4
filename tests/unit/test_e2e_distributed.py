"""The pieces of a distributed end-to-end run: a worker's accepted trace ids on their way
to the master, the sink's ``NOOP clock``, and delays corrected by each source's clock offset."""

from __future__ import annotations

import re
import time

from loadkit.e2e import AcceptedMessages, delivery_summary
from loadkit.sink import SinkProfile, SinkStats, SmtpSession


def test_take_new_sends_only_what_is_new_as_ranges_and_merge_rebuilds_it():
    worker = AcceptedMessages(journal=True)
    for sequence in [3, 0, 1, 2, 7, 9, 8]:
        worker.add_id("r1", "w1", sequence)
    worker.add_id("r1", "w1", 2)  # seen already: not sent twice
    first = worker.take_new()
    assert first == {"accepted": [["r1", "w1", [[0, 3], [7, 9]]]], "untraced": 0}
    assert worker.take_new() is None
    worker.add_id("r1", "w1", 10)
    worker.add(b"Subject: no trace\r\n\r\nbody\r\n")
    second = worker.take_new()
    assert second == {"accepted": [["r1", "w1", [[10, 10]]]], "untraced": 1}

    master = AcceptedMessages()
    assert master.merge(first) == ["w1"]
    master.merge(second)
    master.merge({"accepted": [["r1", "w2", [[0, 4]]]], "untraced": 0})
    assert master.count == 8 + 5 and master.untraced == 1
    assert sorted(master.sequences[("r1", "w1")]) == [0, 1, 2, 3, 7, 8, 9, 10]


def test_each_sources_delays_are_corrected_by_its_own_offset(tmp_path):
    accepted = AcceptedMessages()
    log = tmp_path / "traces.log"
    lines = []
    for sequence in range(4):
        accepted.add_id("r1", "ahead", sequence)  # a sender whose clock is 2 s ahead of the sink's
        lines.append(f"r1 ahead {sequence} 1002.000000 1000.050000")
        accepted.add_id("r1", "behind", sequence)  # one 3 s behind
        lines.append(f"r1 behind {sequence} 997.000000 1000.020000")
    log.write_text("\n".join(lines) + "\n")

    raw = delivery_summary(accepted, log)
    assert raw["early"] == 4 and raw["latency_ms"]["max"] > 3000  # uncorrected: nonsense both ways

    summary = delivery_summary(accepted, log, {"ahead": -2000.0, "behind": 3000.0})
    assert summary["delivered"] == 8 and summary["early"] == 0
    assert 19.9 < summary["latency_ms"]["min"] < 20.1 and 49.9 < summary["latency_ms"]["max"] < 50.1


def test_noop_clock_says_the_sinks_clock_and_plain_noop_is_unchanged():
    session = SmtpSession(SinkProfile(), SinkStats())
    before = time.time()
    replies = session.feed(b"NOOP clock\r\nNOOP\r\nNOOP anything\r\n").split(b"\r\n")
    after = time.time()
    match = re.fullmatch(rb"250 2\.0\.0 Ok clock=(\d+\.\d{6})", replies[0])
    assert match and before - 1e-6 <= float(match.group(1)) <= after + 1e-6
    assert replies[1:] == [b"250 2.0.0 Ok", b"250 2.0.0 Ok", b""]
