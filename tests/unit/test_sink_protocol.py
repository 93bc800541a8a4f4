"""The sink's protocol state machine, fed bytes directly (no sockets)."""

from __future__ import annotations

import time

import pytest

from loadkit.sink import LmtpSession, SinkProfile, SinkStats, SmtpSession
from loadkit.sink._protocol import split_path

MESSAGE = b"Subject: hello\r\n\r\nline one\r\n..a stuffed dot\r\nlast\r\n"
MESSAGE_BYTES = len(MESSAGE) - 1  # one dot of dot-stuffing is not part of the message


def smtp(**profile):
    stats = SinkStats()
    return SmtpSession(SinkProfile(**profile), stats), stats


def lmtp(**profile):
    stats = SinkStats()
    return LmtpSession(SinkProfile(lmtp=True, **profile), stats), stats


def codes(replies: bytes) -> list[str]:
    """The status of each reply line, ``250-`` continuation lines included."""
    return [line[:4].decode().strip() for line in replies.split(b"\r\n") if line]


def test_pipelined_transaction_in_one_write_gets_every_reply_in_one_answer():
    session, stats = smtp()
    replies = session.feed(
        b"EHLO client\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
        b"RCPT TO:<c@example.com>\r\nDATA\r\n" + MESSAGE + b".\r\nQUIT\r\n"
    )
    assert codes(replies) == ["250-"] * 7 + ["250", "250", "250", "250", "354", "250", "221"]
    assert session.closing
    assert (stats.messages, stats.recipients, stats.bytes) == (1, 2, MESSAGE_BYTES)


def test_ehlo_advertises_the_capability_list():
    session, _ = smtp(hostname="sink.test")
    reply = session.feed(b"EHLO client\r\n")
    assert reply == (  # no TLS context and no authenticator: neither STARTTLS nor AUTH
        b"250-sink.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n"
        b"250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
    )
    session, _ = smtp(capabilities=("8BITMIME",))
    assert session.feed(b"EHLO client\r\n") == b"250-loadkit-sink\r\n250 8BITMIME\r\n"


def transaction(message: bytes) -> bytes:
    return b"HELO client\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + message + b".\r\n"


@pytest.mark.parametrize(
    "wire_message, expected_bytes",
    [(MESSAGE, MESSAGE_BYTES), (b"", 0), (b"..\r\n", 3), (b"...\r\n", 4), (b"x\r\n..\r\n", 6), (b"a\r\n" * 3, 9)],
)
def test_the_terminator_split_at_every_position_counts_the_same(wire_message, expected_bytes):
    """Feeding the transcript in two pieces, cut anywhere, changes nothing."""
    wire = transaction(wire_message)
    whole, whole_stats = smtp()
    expected = whole.feed(wire)
    assert codes(expected) == ["250", "250", "250", "354", "250"]
    assert (whole_stats.messages, whole_stats.bytes) == (1, expected_bytes)
    for cut in range(1, len(wire)):
        session, stats = smtp()
        replies = session.feed(wire[:cut]) + session.feed(wire[cut:])
        assert replies == expected, cut
        assert (stats.messages, stats.bytes) == (1, expected_bytes), cut


def test_byte_by_byte_feeding_counts_the_same():
    wire = transaction(b"..dot\r\nbody\r\n") + transaction(b"") + b"QUIT\r\n"
    session, stats = smtp()
    replies = b"".join(session.feed(wire[i:i + 1]) for i in range(len(wire)))
    assert codes(replies) == ["250", "250", "250", "354", "250"] * 2 + ["221"]
    assert (stats.messages, stats.recipients, stats.bytes) == (2, 2, len(b".dot\r\nbody\r\n"))


def test_empty_message_right_after_data():
    session, stats = smtp()
    session.feed(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y>\r\n")
    assert session.feed(b"DATA\r\n.\r\n") == b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued\r\n"
    assert (stats.messages, stats.bytes) == (1, 0)


def test_dot_stuffed_lines_are_counted_without_their_extra_dot():
    body = b"..first line starts with a dot\r\nmiddle\r\n..\r\n...two dots\r\n"
    session, stats = smtp()
    session.feed(transaction(body))
    assert stats.bytes == len(body) - 3


def test_commands_after_the_terminator_in_the_same_read_are_kept():
    session, stats = smtp()
    session.feed(b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    replies = session.feed(b"body\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    assert codes(replies) == ["250", "250", "250", "354"]
    assert session.feed(b"second\r\n.\r\nQUIT\r\n") == b"250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n"
    assert (stats.messages, stats.recipients, stats.bytes) == (2, 2, 14)


def test_a_message_over_many_reads_keeps_only_a_small_carry():
    session, stats = smtp()
    session.feed(transaction(b"")[:-3])
    chunk = b"x" * 1000 + b"\r\n.dotted\r\n"  # the line start of the next chunk is ..
    for _ in range(50):
        assert session.feed(chunk.replace(b"\r\n.", b"\r\n..")) == b""
        assert len(session._buf) <= 4
    assert session.feed(b".\r\n") == b"250 2.0.0 Ok: queued\r\n"
    assert stats.bytes == 50 * len(chunk)


def test_lmtp_answers_once_per_recipient_after_the_data():
    session, stats = lmtp()
    replies = session.feed(
        b"LHLO client\r\nMAIL FROM:<a@b>\r\nRCPT TO:<1@d>\r\nRCPT TO:<2@d>\r\nRCPT TO:<3@d>\r\n"
        b"DATA\r\n" + MESSAGE + b".\r\n"
    )
    assert replies.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n" + b"250 2.0.0 Ok: queued\r\n" * 3)
    assert (stats.messages, stats.recipients, stats.bytes) == (1, 3, MESSAGE_BYTES)


def test_lmtp_wants_lhlo_and_smtp_does_not_know_it():
    session, _ = lmtp()
    assert codes(session.feed(b"HELO c\r\nEHLO c\r\nMAIL FROM:<a@b>\r\n")) == ["500", "500", "503"]
    assert session.feed(b"LHLO c\r\n").startswith(b"250-loadkit-sink\r\n")
    session, _ = smtp()
    assert codes(session.feed(b"LHLO c\r\n")) == ["500"]


@pytest.mark.parametrize(
    "commands, expected",
    [
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", ["250", "250"]),  # no HELO is fine, as in Postfix
        (b"HELO c\r\nRCPT TO:<a@b>\r\n", ["250", "503"]),  # before MAIL
        (b"HELO c\r\nDATA\r\n", ["250", "503"]),
        (b"HELO c\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\n", ["250", "250", "503"]),  # nested
        (b"HELO c\r\nMAIL FROM:<a@b>\r\nDATA\r\n", ["250", "250", "554"]),  # no valid recipient
        (b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<>\r\nDATA\r\n", ["250", "250", "501", "554"]),
        (b"HELO c\r\nMAIL FROM:<a@b>\r\nRSET\r\nRCPT TO:<a@b>\r\n", ["250", "250", "250", "503"]),
        (b"HELO\r\nEHLO \r\n", ["501", "501"]),
        (b"HELO c\r\nMAIL TO:<a@b>\r\nMAIL FROM:<a@b\r\n", ["250", "501", "501"]),
        (b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT FROM:<a@b>\r\nRCPT TO:\r\n", ["250", "250", "501", "501"]),
        (b"HELO c\r\nMAIL FROM:<a@b> SIZE=99999999\r\n", ["250", "552"]),
        (b"HELO c\r\nMAIL FROM:<a@b> SIZE=big\r\n", ["250", "501"]),
        (b"HELO c\r\nMAIL FROM:<a@b> SIZE=100 BODY=8BITMIME\r\n", ["250", "250"]),
        (b"HELO c\r\nMAIL FROM:<a@b> FOO=BAR\r\n", ["250", "555"]),
        (b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@b> FOO=BAR\r\n", ["250", "250", "555"]),
        (b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@b>\r\nDATA now\r\n", ["250", "250", "250", "501"]),
        (b"BDAT 10\r\n0123456789mail from:<a@b>\r\n", ["503", "250"]),  # the chunk is read all the same
        (b"NOOP\r\nVRFY someone\r\nVRFY\r\nHELP\r\nRSET\r\n", ["250", "252", "501", "214", "250"]),
        (b"helo c\nmail from:a@b\nrcpt to:c@d\n", ["250", "250", "250"]),  # case and bare LF
    ],
)
def test_bad_commands_and_sequences(commands, expected):
    session, stats = smtp()
    assert codes(session.feed(commands)) == expected
    assert stats.messages == 0


def test_lmtp_data_without_a_recipient_is_503():
    session, _ = lmtp()
    assert codes(session.feed(b"LHLO c\r\nMAIL FROM:<a@b>\r\nDATA\r\n")) == ["250-"] * 7 + ["250", "250", "503"]


def test_helo_again_ends_the_transaction():
    session, _ = smtp()
    assert codes(session.feed(b"HELO c\r\nMAIL FROM:<a@b>\r\nEHLO c\r\nRCPT TO:<c@d>\r\n"))[-1] == "503"


def test_too_long_lines_are_refused_and_the_session_goes_on():
    session, stats = smtp()
    long_line = b"NOOP " + b"x" * 5000 + b"\r\n"
    assert session.feed(long_line + b"NOOP\r\n") == b"500 5.5.6 Error: line too long\r\n250 2.0.0 Ok\r\n"
    # the same line spread over many reads, never buffered whole
    replies = b"".join(session.feed(long_line[i:i + 1000]) for i in range(0, len(long_line), 1000))
    assert replies == b"500 5.5.6 Error: line too long\r\n"
    assert len(session._buf) == 0
    assert session.feed(b"HELO c\r\n") == b"250 loadkit-sink\r\n"


def test_a_message_over_the_size_limit_is_refused_and_not_counted():
    session, stats = smtp(max_size=10)
    assert codes(session.feed(transaction(b"x" * 20 + b"\r\n"))) == ["250", "250", "250", "354", "552"]
    assert (stats.messages, stats.bytes) == (0, 0)
    assert codes(session.feed(transaction(b"short\r\n"))) == ["250", "250", "250", "354", "250"]
    assert (stats.messages, stats.bytes) == (1, 7)


def test_nothing_is_read_after_quit():
    session, _ = smtp()
    assert codes(session.feed(b"QUIT\r\nNOOP\r\n")) == ["221"]
    assert session.closing


def test_the_message_limit_calls_back_once():
    stats = SinkStats()
    calls = []
    session = SmtpSession(SinkProfile(max_messages=2), stats, on_limit=lambda: calls.append(stats.messages))
    for _ in range(3):
        session.feed(transaction(b"x\r\n"))
    assert calls == [2]


def unstuffed_length(wire_message: bytes) -> int:
    """The reference: undo dot-stuffing line by line, the slow obvious way."""
    lines = wire_message.split(b"\r\n")[:-1]
    return sum(len(line[1:] if line.startswith(b".") else line) + 2 for line in lines)


@pytest.mark.parametrize("seed", range(40))
def test_random_dotted_messages_in_random_reads_match_line_by_line_unstuffing(seed):
    """Sparse and dense dots (both scan paths), every kind of split between reads."""
    import random

    rng = random.Random(seed)
    alphabet = [b"x", b".", b"\r\n", b"\r\n.", b"\r\n..", b". ", b"\r"]
    wire_messages = []
    for _ in range(3):
        parts = [rng.choice(alphabet) for _ in range(rng.randrange(0, 300 if seed % 2 else 40))]
        body = b"".join(parts) + b"\r\n"
        # stuff it as a client would: a line starting with a dot gets one more
        stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in body.split(b"\r\n"))
        wire_messages.append(stuffed)
    wire = b"EHLO c\r\n" + b"".join(
        b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + message + b".\r\n" for message in wire_messages
    ) + b"QUIT\r\n"
    session, stats = smtp()
    replies = b""
    position = 0
    while position < len(wire):
        size = rng.choice([1, 2, 3, 5, 7, 64, 1000])
        replies += session.feed(wire[position:position + size])
        position += size
    assert replies.count(b"250 2.0.0 Ok: queued") == 3 and session.closing
    assert stats.messages == 3
    assert stats.bytes == sum(unstuffed_length(message) for message in wire_messages)


def test_noop_clock_gives_the_sinks_wall_clock_in_any_case():
    session, _ = smtp()
    for argument in (b"clock", b"CLOCK", b" Clock "):
        before = time.time()
        reply = session.feed(b"NOOP " + argument + b"\r\n")
        assert reply.startswith(b"250 2.0.0 Ok clock=") and reply.endswith(b"\r\n")
        assert before - 0.001 <= float(reply[len(b"250 2.0.0 Ok clock="):-2]) <= time.time() + 0.001
    assert session.feed(b"NOOP clocks\r\n") == b"250 2.0.0 Ok\r\n"


def test_split_path_gives_the_address_without_its_parameters():
    assert split_path(b"<a@b> SIZE=10") == b"a@b"
    assert split_path(b" a@b BODY=8BITMIME") == b"a@b"
    assert split_path(b"<>") == b""
    assert split_path(b"<a@b") is None and split_path(b"") is None
