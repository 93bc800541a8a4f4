"""A new session's state (its first transaction is judged like the later ones) and `split_path`."""

from __future__ import annotations

import pytest

from loadkit.sink import SinkProfile, SinkStats, SmtpSession
from loadkit.sink._protocol import _split_path, split_path


def fresh(**profile) -> tuple[SmtpSession, SinkStats]:
    stats = SinkStats()
    return SmtpSession(SinkProfile(**profile), stats), stats


def test_the_first_transaction_needs_a_recipient_and_smtputf8_like_the_others():
    session, _ = fresh()
    assert session.feed(b"MAIL FROM:<a@b>\r\nDATA\r\n") == b"250 2.1.0 Ok\r\n554 5.5.1 Error: no valid recipients\r\n"
    session, _ = fresh()
    assert session.feed(b"MAIL FROM:<\xc3\xa9@b>\r\n") == b"553 5.6.7 Error: UTF-8 address without SMTPUTF8\r\n"


def test_the_first_chunked_message_counts_its_own_bytes_only():
    session, stats = fresh()
    session.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5 LAST\r\nhello")
    assert (stats.messages, stats.bytes) == (1, 5)


def test_a_session_made_without_saying_tls_offers_starttls():
    session, _ = fresh(tls=True)
    assert b"250-STARTTLS\r\n" in session.feed(b"EHLO c\r\n")


@pytest.mark.parametrize("text, address", [
    (b"<a@b>", b"a@b"), (b"  <a@b> SIZE=10", b"a@b"), (b"<>", b""), (b"<a@b", None), (b"", None),
    (b"Xavier@b", b"Xavier@b"), (b"Xavier@b BODY=8BITMIME", b"Xavier@b"),  # without brackets: taken as it is
])
def test_split_path(text, address):
    assert split_path(text) == address


def test_the_parameters_start_right_after_the_closing_bracket():
    assert _split_path(b"<a@b>SIZE=10") == (b"a@b", b"SIZE=10")
    assert _split_path(b"<a@b>  SIZE=10 ") == (b"a@b", b"SIZE=10")
