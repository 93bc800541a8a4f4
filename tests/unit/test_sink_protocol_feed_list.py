"""`SmtpSession.feed_list`, the read loop's entry point: line limits, bare LFs, a session closing mid-read."""

from __future__ import annotations

import pytest

from loadkit.sink import FaultPlan, SinkProfile, SinkStats, SmtpSession
from loadkit.sink._protocol import MAX_LINE

ENVELOPE = b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
S250_OK = b"250 2.0.0 Ok\r\n"
S421_CLOSING = b"421 4.3.0 Error: server closing connection\r\n"


def test_a_command_line_of_max_line_bytes_with_its_crlf_is_answered_and_one_byte_more_is_too_long():
    session = SmtpSession(SinkProfile(), SinkStats())
    line = b"NOOP " + b"x" * (MAX_LINE - 7) + b"\r\n"
    assert len(line) == MAX_LINE
    assert session.feed_list(line) == [S250_OK]
    assert session.feed_list(line[:100]) == [] and session.feed_list(line[100:]) == [S250_OK]
    assert session.feed_list(b"NOOP x" + line[5:]) == [b"500 5.5.6 Error: line too long\r\n"]
    assert session.feed_list(b"NOOP\r\n") == [S250_OK]


@pytest.mark.parametrize("data, size", [
    (b".\r\n", 0),  # the terminator at once: the LF that ended DATA begins it
    (b"..dot\r\nx\r\n.\r\n", len(b".dot\r\nx\r\n")),  # a stuffed dot on the first line
])
def test_data_ended_by_a_bare_lf_starts_the_message_right_after_it(data, size):
    stats = SinkStats()
    session = SmtpSession(SinkProfile(), stats)
    out = session.feed_list(b"HELO c\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\n" + data + b"QUIT\r\n")
    assert out == [b"250 loadkit-sink\r\n", b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n",
                   b"354 End data with <CR><LF>.<CR><LF>\r\n", b"250 2.0.0 Ok: queued\r\n", b"221 2.0.0 Bye\r\n"]
    assert (stats.messages, stats.bytes) == (1, size)


@pytest.mark.parametrize("message, answer", [
    (b"DATA\r\nhi\r\n.\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    (b"BDAT 2 LAST\r\nhi", b""),  # a chunk is answered once it is in: by the fault
])
def test_a_fault_that_closes_at_the_end_of_data_ends_the_replies_of_that_read(message, answer):
    """The replies before the 421 are returned with it; the NOOP pipelined after it is not answered."""
    stats = SinkStats()
    session = SinkProfile(faults=FaultPlan().shutdown("data-end")).new_session(stats, peer=("127.0.0.1", 40000))
    out = session.feed_list(ENVELOPE + message + b"NOOP\r\n")
    assert out == [b"250 loadkit-sink\r\n", b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", answer, S421_CLOSING]
    assert session.closing and not session.starttls
    assert stats.messages == 0
