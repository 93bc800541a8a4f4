"""Faults on purpose at the protocol level: specs, rates, delays, greylisting, the end of data."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from loadkit.sink import Delay, FaultError, FaultPlan, Greylist, SinkProfile, SinkStats
from loadkit.sink._buffers import BufferBudget
from loadkit.sink._faults import SlowReply, parse_duration
from loadkit.sink._store import MaildirStore

TRANSACTION = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhello\r\n.\r\n"


def session(faults=None, lmtp=False, greylist=None, peer=("127.0.0.1", 40000)):
    stats = SinkStats()
    profile = SinkProfile(lmtp=lmtp, faults=faults, greylist=greylist)
    return profile.new_session(stats, peer=peer), stats


def codes(replies: bytes) -> list[str]:
    return [line[:4].decode().strip() for line in replies.split(b"\r\n") if line]


@pytest.mark.parametrize(
    "text, seconds",
    [("50ms", 0.05), ("1.5s", 1.5), ("200us", 0.0002), ("2m", 120.0), ("3", 3.0), (".5s", 0.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "method, spec, message",
    [
        ("add_reject_spec", "rcpt", r"use COMMAND:CODE\[:RATE\]"),
        ("add_reject_spec", "rcpt:55", "three digits"),
        ("add_reject_spec", "rcpt:250", "not a 4xx or 5xx"),
        ("add_reject_spec", "rcpt:550:2", "not between 0 and 1"),
        ("add_reject_spec", "rcpt:550:often", "rate must be a number"),
        ("add_reject_spec", "xyzzy:550", "unknown command 'xyzzy'"),
        ("add_delay_spec", "data", "use COMMAND:DELAY"),
        ("add_delay_spec", "data:5 parsecs", "bad duration"),
        ("add_delay_spec", "data:uniform:2s:1s", "must not exceed"),
        ("add_delay_spec", "data:lognormal:10ms:0.5", "spread factor at least 1"),
        ("add_delay_spec", "data:gamma:1:2", "bad delay"),
        ("add_drip_spec", "ehlo:fast", "use COMMAND:BYTES_PER_SECOND"),
        ("add_drip_spec", "ehlo:0", "at least 1 byte"),
    ],
)
def test_bad_specs_say_what_is_wrong(method, spec, message):
    with pytest.raises(FaultError, match=message):
        getattr(FaultPlan(), method)(spec)


def test_reject_rcpt_always_leaves_no_recipient():
    smtp, stats = session(FaultPlan().add_reject_spec("rcpt:550"))
    replies = smtp.feed(b"HELO c\r\n" + TRANSACTION)
    assert codes(replies) == ["250", "250", "550", "554", "500", "500"]  # the body lines are commands now
    assert b"550 5.3.0 Error: RCPT rejected (loadkit sink --reject)\r\n" in replies
    assert stats.messages == 0 and stats.faults == {("reject", "rcpt"): 1}


def test_reject_rate_with_a_seed_is_the_same_every_time():
    def rejects(seed):
        smtp, stats = session(FaultPlan(seed=seed).reject("rcpt", 450, rate=0.3))
        smtp.feed(b"HELO c\r\n")
        for _ in range(1000):
            smtp.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRSET\r\n")
        return stats.fault_count("reject", "rcpt")

    first = rejects(7)
    assert rejects(7) == first
    assert 240 <= first <= 360  # 30% of 1000, give or take
    assert rejects(8) != first or rejects(9) != first


def test_a_rejected_end_of_data_is_not_a_message_and_lmtp_repeats_it():
    plan = FaultPlan().reject("data-end", 554)
    lmtp, stats = session(plan, lmtp=True)
    replies = lmtp.feed(b"LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\nx\r\n.\r\nRSET\r\n")
    assert codes(replies)[-4:] == ["354", "554", "554", "250"]
    assert (stats.messages, stats.fault_count("reject", ".")) == (0, 1)
    assert codes(lmtp.feed(b"RCPT TO:<c@d>\r\n")) == ["503"]  # the transaction is over


def test_smtp_sink_style_rejects_and_disconnects():
    plan = FaultPlan().hard_reject("mail").soft_reject("noop").shutdown("vrfy").disconnect("rset")
    smtp, stats = session(plan)
    assert smtp.feed(b"MAIL FROM:<a@b>\r\nNOOP\r\n") == (
        b"500 5.3.0 Error: command failed\r\n450 4.3.0 Error: command failed\r\n"
    )
    assert smtp.feed(b"VRFY x\r\nNOOP\r\n") == b"421 4.3.0 Error: server closing connection\r\n"
    assert smtp.closing
    other, _ = session(plan)
    assert other.feed(b"HELO c\r\nRSET\r\nNOOP\r\n") == b"250 loadkit-sink\r\n" and other.closing
    assert stats.faults == {("reject", "mail"): 1, ("reject", "noop"): 1, ("shutdown", "vrfy"): 1}


def test_delays_and_drips_come_out_as_slow_replies():
    plan = FaultPlan(seed=1).delay("rcpt", "20ms").delay("rcpt", "5ms").drip("rcpt", 100).delay("data-end", "1s")
    smtp, stats = session(plan)
    out = smtp.feed_list(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n")
    assert out[0] == b"250 2.1.0 Ok\r\n"
    assert out[1] == SlowReply(pytest.approx(0.025), 100, b"250 2.1.5 Ok\r\n")
    assert out[3] == SlowReply(1.0, 0, b"250 2.0.0 Ok: queued\r\n")
    assert stats.messages == 1
    assert stats.faults == {("delay", "rcpt"): 2, ("drip", "rcpt"): 1, ("delay", "."): 1}


def draws(spec: str, count: int = 20000) -> list[float]:
    delay = Delay(spec)
    rng = random.Random(42)
    return [delay.draw(rng) for _ in range(count)]


def test_delay_distributions():
    assert set(draws("fixed:50ms", 10)) == {0.05}
    uniform = draws("uniform:10ms:20ms")
    assert 0.01 <= min(uniform) and max(uniform) <= 0.02
    assert statistics.mean(draws("exp:10ms")) == pytest.approx(0.01, rel=0.05)
    lognormal = draws("lognormal:10ms:3")
    assert statistics.median(lognormal) == pytest.approx(0.01, rel=0.05)
    within = sum(0.01 / 3 <= value <= 0.03 for value in lognormal) / len(lognormal)
    assert within == pytest.approx(math.erf(1 / math.sqrt(2)), abs=0.02)  # one geometric standard deviation
    assert max(draws("lognormal:100s:100", 200)) <= 600.0  # cut at MAX_DELAY


def test_greylist_first_attempt_fails_later_ones_pass():
    greylist = Greylist()
    assert not greylist.passes(("1.2.3.4", b"a", b"b"), 0.0)
    assert greylist.passes(("1.2.3.4", b"a", b"b"), 0.0)
    delayed = Greylist(delay=60)
    assert not delayed.passes(("ip", b"a", b"b"), 100.0)
    assert not delayed.passes(("ip", b"a", b"b"), 159.0)
    assert delayed.passes(("ip", b"a", b"b"), 160.0)
    small = Greylist(max_entries=2)
    for key in ("k1", "k2", "k3"):
        small.passes((key,), 0.0)
    assert not small.passes(("k1",), 0.0)  # forgotten, the oldest: greylisted anew


def test_greylisting_in_a_session_keys_on_client_sender_and_recipient():
    greylist = Greylist()
    first, stats = session(greylist=greylist)
    assert codes(first.feed(b"HELO c\r\n" + TRANSACTION)) == ["250", "250", "450", "554", "500", "500"]
    assert first.feed(b"RSET\r\n") == b"250 2.0.0 Ok\r\n"
    second, _ = session(greylist=greylist)
    second.stats = stats
    assert codes(second.feed(b"HELO c\r\n" + TRANSACTION)) == ["250", "250", "250", "354", "250"]
    other_client, _ = session(greylist=greylist, peer=("127.0.0.2", 1))
    other_client.stats = stats
    assert codes(other_client.feed(b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")) == ["250", "250", "450"]
    assert stats.faults == {("greylist", "rcpt"): 2} and stats.messages == 1


def test_a_rejected_bdat_still_reads_its_chunk():
    smtp, stats = session(FaultPlan().reject("bdat", 554))
    replies = smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 6 LAST\r\nNOOP\r\nRSET\r\nNOOP\r\n")
    assert codes(replies)[-4:] == ["250", "554", "250", "250"]  # "NOOP\r\n" was chunk data, not a command
    assert stats.messages == 0 and stats.faults == {("reject", "bdat"): 1}


def test_a_rejected_bdat_without_last_still_reads_its_chunk():
    smtp, stats = session(FaultPlan().reject("bdat", 554))
    replies = smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 6\r\nNOOP\r\nRSET\r\n")
    assert codes(replies)[-3:] == ["250", "554", "250"]  # BDAT refused, its chunk skipped, RSET answered
    assert codes(smtp.feed(b"BDAT 0 LAST\r\nNOOP\r\n")) == ["554", "250"]  # an empty chunk: answered at once
    assert stats.messages == 0 and stats.faults == {("reject", "bdat"): 2}


def test_feed_joins_slow_replies_as_their_bytes():
    plan = FaultPlan(seed=1).delay("rcpt", "20ms").drip("data-end", 100)
    smtp, _ = session(plan)
    assert smtp.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n") == (
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued\r\n"
    )


def test_a_rejected_last_chunk_gives_back_the_buffer_the_message_held(tmp_path):
    budget = BufferBudget()
    profile = SinkProfile(faults=FaultPlan(seed=1).reject("bdat", 554, rate=0.5), store=MaildirStore(str(tmp_path)),
                          buffers=budget)
    smtp = profile.new_session(SinkStats())
    smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
    assert smtp.feed(b"BDAT 4\r\nabcd") == b"250 2.0.0 Ok: chunk received\r\n"  # this seed: the first chunk passes
    assert budget.used == 4
    assert codes(smtp.feed(b"BDAT 3 LAST\r\nefg")) == ["554"]  # and the last one is refused
    assert budget.used == 0


def test_a_stored_message_with_many_stuffed_dots_over_several_reads_is_kept_whole(tmp_path):
    """Past a few dots the scan counts them in C (the dense path); what it keeps must be the same message."""
    message = b"Subject: dots\r\n\r\n" + b"".join(b".line %d\r\n" % n for n in range(30))
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    profile = SinkProfile(store=MaildirStore(str(tmp_path)), buffers=BufferBudget())
    smtp = profile.new_session(SinkStats())
    wire = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + stuffed + b".\r\n"
    middle = len(wire) // 2
    assert smtp.feed(wire[:middle]) != b""
    assert smtp.feed(wire[middle:]).endswith(b"250 2.0.0 Ok: queued\r\n")
    stored = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    assert len(stored) == 1 and stored[0].endswith(message)
