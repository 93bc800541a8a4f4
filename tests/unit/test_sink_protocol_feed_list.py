"""`SmtpSession.feed_list`, the read loop's entry point: what it returns when a session closes mid-read."""

from __future__ import annotations

import pytest

from loadkit.sink import FaultPlan, SinkProfile, SinkStats

ENVELOPE = b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
S421_CLOSING = b"421 4.3.0 Error: server closing connection\r\n"


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
