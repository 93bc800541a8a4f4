"""The sink's counters: replies by code, faults, trace delays and duplicates, the maildir store."""

from __future__ import annotations

import os
import re
import time

import pytest

from loadkit.hdr import decode
from loadkit.messages import MessageFactory, Trace
from loadkit.sink import FaultPlan, MaildirStore, SinkProfile, SinkStats, TraceStats
from loadkit.sink._stats import FOLD_REPLIES_ABOVE, SEEN_BITMAP_LIMIT

MAILDIR_NAME = re.compile(r"[0-9]+\.M[0-9]{6}P[0-9]+Q[0-9]+\.[A-Za-z0-9._-]+\Z")


def test_reply_codes_count_reply_lines_and_survive_folding():
    stats = SinkStats()
    stats.replies[b"250-host\r\n250 SIZE\r\n"] = 2  # one multi-line reply, twice
    stats.replies[b"250 2.0.0 Ok: queued\r\n" * 3] = 1  # an LMTP end of data for 3 recipients
    stats.replies[b""] = 5  # a silent disconnect
    stats.replies[b"421 4.3.0 Error\r\n"] = 1
    assert stats.reply_codes() == {"250": 5, "421": 1}
    replies = stats.replies
    for number in range(FOLD_REPLIES_ABOVE):
        stats.replies[b"334 challenge%d\r\n" % number] = 1
    stats.fold_replies()
    assert stats.replies is replies and not replies  # folded in place: sessions keep their reference
    assert stats.reply_codes() == {"250": 5, "334": FOLD_REPLIES_ABOVE, "421": 1}


def test_as_dict_nests_faults_by_kind_and_command():
    stats = SinkStats()
    stats.count_fault("reject", "rcpt")
    stats.count_fault("reject", "rcpt")
    stats.count_fault("delay", ".")
    record = stats.as_dict()
    assert record["faults"] == {"delay": {".": 1}, "reject": {"rcpt": 2}}
    assert stats.fault_count("reject") == 2 and stats.fault_count(command=".") == 1
    assert record["trace"] is None and record["tls"] == {"sessions": 0, "failures": 0}
    assert "faults 3" in stats.summary()


def test_trace_delays_duplicates_and_early_arrivals():
    trace = TraceStats()
    now = 1_800_000_000.0
    for sequence in range(100):
        trace.record(Trace("run1", "src1", sequence, now - 0.010), now)  # 10 ms on the way
    trace.record(Trace("run1", "src1", 5, now - 0.5), now)  # a duplicate
    trace.record(Trace("run1", "src2", 5, now - 0.5), now)  # another source: not a duplicate
    trace.record(Trace("run1", "src1", 99, now + 1.0), now)  # a duplicate from a clock ahead
    record = trace.as_dict()
    assert (record["messages"], record["duplicates"], record["early"]) == (103, 2, 1)
    assert record["delay_ms"]["p50"] == pytest.approx(10.0, rel=0.01)
    assert record["delay_ms"]["max"] == pytest.approx(500.0, rel=0.01)
    histogram = decode(record["delay_histogram"])
    assert histogram.total_count == 103
    assert histogram.get_value_at_percentile(50) == pytest.approx(10_000, rel=0.01)  # microseconds


def test_duplicates_far_apart_and_past_the_bitmap():
    trace = TraceStats()
    for sequence in (0, 7, 8, 1_000_000, SEEN_BITMAP_LIMIT + 3, 9_999_999_999):
        trace.record(Trace("r", "s", sequence, 1.0), 2.0)
        trace.record(Trace("r", "s", sequence, 1.0), 2.0)
    assert trace.duplicates == 6
    assert len(trace._seen[("r", "s")]) <= 2 * 1_000_000 // 8 + 1024  # one bit a sequence number


def full_session(**profile):
    stats = SinkStats(trace=profile.get("trace", False))
    return SinkProfile(**profile).new_session(stats), stats


def send(session, message: bytes, reads: int = 1) -> bytes:
    wire = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + message.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    step = -(-len(wire) // reads)
    return b"".join(session.feed(wire[i:i + step]) for i in range(0, len(wire), step))


def test_a_session_reads_traces_of_accepted_messages_only():
    factory = MessageFactory(payload_size=2000, seed=3, run_id="abc", source_tag="here")
    smtp, stats = full_session(trace=True, faults=FaultPlan().reject(".", 451, rate=0.0))
    message = factory.build(41)
    sent_at = time.time()
    send(smtp, message, reads=7)  # the header block cut across reads
    send(smtp, message)  # the same trace again
    send(smtp, b"Subject: no trace\r\n\r\nbody\r\n")
    record = stats.trace.as_dict()
    assert (stats.messages, record["messages"], record["duplicates"]) == (3, 2, 1)
    assert 0 <= record["delay_ms"]["max"] <= (time.time() - sent_at) * 1000 + 1
    rejecting, rejected_stats = full_session(trace=True, faults=FaultPlan().reject(".", 554))
    assert b"554 5.3.0" in send(rejecting, factory.build(42))
    assert (rejected_stats.messages, rejected_stats.trace.messages) == (0, 0)


def test_trace_off_leaves_the_plain_session():
    plain, stats = full_session()
    assert type(plain).__name__ == "SmtpSession" and stats.trace is None
    traced, _ = full_session(trace=True)
    assert type(traced).__name__ == "FullSmtpSession"


# -- the store -------------------------------------------------------------------------


def test_store_writes_maildir_files_named_by_the_sink(tmp_path):
    store = MaildirStore(str(tmp_path / "mail"), max_messages=2)
    smtp, stats = full_session(store=store, max_size=100)
    body = b"Subject: one\r\n\r\n.leading dot\r\nend\r\n"
    wire = (b"MAIL FROM:<../../etc/passwd@evil>\r\nRCPT TO:<x@y>\r\nRCPT TO:<z@y>\r\nDATA\r\n"
            + body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    for _ in range(3):
        assert smtp.feed(wire).endswith(b"250 2.0.0 Ok: queued\r\n")
    assert smtp.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + b"x" * 200 + b"\r\n.\r\n").endswith(b"552 5.3.4 Message size exceeds fixed limit\r\n")
    names = sorted(os.listdir(tmp_path / "mail" / "new"))
    assert len(names) == 2 and all(MAILDIR_NAME.match(name) for name in names), names
    assert os.listdir(tmp_path / "mail" / "tmp") == [] and os.listdir(tmp_path / "mail" / "cur") == []
    assert sorted(os.listdir(tmp_path)) == ["mail"]  # nothing written anywhere the sender named
    content = (tmp_path / "mail" / "new" / names[0]).read_bytes()
    assert content == b"Return-Path: <../../etc/passwd@evil>\r\nDelivered-To: x@y\r\nDelivered-To: z@y\r\n" + body
    assert (stats.messages, stats.stored, stats.store_skipped, stats.store_failed) == (3, 2, 1, 0)


def test_store_of_bdat_messages_keeps_them_as_sent(tmp_path):
    store = MaildirStore(str(tmp_path))
    smtp, stats = full_session(store=store)
    chunk = b"Subject: c\r\n\r\n.no stuffing in BDAT\r\n"
    smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT %d LAST\r\n" % len(chunk) + chunk)
    (name,) = os.listdir(tmp_path / "new")
    assert (tmp_path / "new" / name).read_bytes().endswith(b"Delivered-To: c@d\r\n" + chunk)
    assert stats.stored == 1


def test_a_store_that_cannot_write_answers_451_and_counts_nothing(tmp_path):
    store = MaildirStore(str(tmp_path))
    os.rmdir(tmp_path / "tmp")  # the write into tmp/ fails
    lmtp, stats = full_session(store=store, lmtp=True)
    replies = lmtp.feed(b"LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\nx\r\n.\r\n")
    assert replies.endswith(b"451 4.3.0 Error: the message could not be stored\r\n" * 2)
    assert (stats.messages, stats.stored, stats.store_failed) == (0, 0, 1)


def test_maildir_names_are_unique():
    store = MaildirStore.__new__(MaildirStore)
    store._pid, store._host = 1, "h"
    store._counter = iter(range(1, 1001))
    names = {store.unique_name() for _ in range(1000)}
    assert len(names) == 1000


def test_trace_in_a_long_header_block_and_a_trace_line_cut_by_the_budget():
    from loadkit.sink._full import TRACE_CAPTURE

    trace_line = b"X-Loadkit-Trace: run=r; src=s; seq=0000000001; t=1795652101.123456\r\n"
    filler = b"".join(b"X-Filler-%05d: %s\r\n" % (n, b"y" * 60) for n in range(400))  # about 30 KB
    smtp, stats = full_session(trace=True)
    send(smtp, trace_line + filler + b"\r\nbody\r\n", reads=9)
    assert stats.trace.messages == 1  # found although the block is longer than the budget
    # a trace line that the budget cuts inside its t= value is left out rather than read short
    lines = filler[: filler.rfind(b"\r\n", 0, TRACE_CAPTURE - 200) + 2]
    start = TRACE_CAPTURE - (trace_line.index(b"t=") + 6)  # where the trace line begins in the stream
    pad = start - 2 - len(lines) - len(b"X-Pad: \r\n")
    head = lines + b"X-Pad: " + b"p" * pad + b"\r\n"
    assert 2 + len(head) == start and start + len(trace_line) > TRACE_CAPTURE
    send(smtp, head + trace_line.replace(b"seq=0000000001", b"seq=0000000002") + b"\r\nbody\r\n")
    assert (stats.messages, stats.trace.messages) == (2, 1)


def test_trace_log_gets_one_line_per_traced_message(tmp_path):
    path = tmp_path / "traces.log"
    trace = TraceStats()
    trace.log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        trace.record(Trace("run1", "src1", 7, 100.25), 100.5)
        trace.record(Trace("run1", "src1", 7, 100.25), 101.0)
    finally:
        os.close(trace.log)
    assert path.read_text().splitlines() == [
        "run1 src1 7 100.250000 100.500000", "run1 src1 7 100.250000 101.000000",
    ]
