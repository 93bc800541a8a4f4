"""Python's smtplib against the sink: SMTP, and LMTP with several recipients.

`smtplib.LMTP.sendmail` reads a single reply after the data, so the test
reads the other recipients' replies from the same connection itself.
"""

from __future__ import annotations

import smtplib

from loadkit.sink import SinkServer

MESSAGE = b"From: s@example.com\r\nSubject: smtplib\r\n\r\n.a line with a leading dot\r\nbye\r\n"
RECIPIENTS = ["a@example.com", "b@example.com", "c@example.com"]


def test_smtplib_smtp_several_messages_on_one_connection():
    with SinkServer("127.0.0.1:0", hostname="sink.test") as server:
        host, port = server.address
        with smtplib.SMTP(host, port, timeout=10) as client:
            code, capabilities = client.ehlo("client.test")
            assert code == 250
            assert capabilities.split(b"\n") == [
                b"sink.test", b"PIPELINING", b"SIZE 10240000", b"STARTTLS", b"AUTH PLAIN LOGIN",
                b"ENHANCEDSTATUSCODES", b"8BITMIME", b"DSN", b"SMTPUTF8", b"CHUNKING",
            ]
            for _ in range(3):
                assert client.sendmail("s@example.com", RECIPIENTS, MESSAGE) == {}
            assert client.verify("someone")[0] == 252
            assert client.noop()[0] == 250
            assert client.rset()[0] == 250
            assert client.docmd("DATA") == (503, b"5.5.1 Error: need MAIL command")
            assert client.mail("s@example.com", ["SIZE=20000000"])[0] == 552
    stats = server.stats
    assert (stats.sessions, stats.messages, stats.recipients) == (1, 3, 9)
    # smtplib dot-stuffs the leading dot; the sink counts the message as given
    assert stats.bytes == 3 * len(MESSAGE)


def test_smtplib_lmtp_one_reply_per_recipient_on_the_wire():
    with SinkServer("127.0.0.1:0", lmtp=True) as server:
        host, port = server.address
        client = smtplib.LMTP(host, port, timeout=10)
        try:
            assert client.ehlo("client.test")[0] == 250  # smtplib.LMTP sends LHLO
            assert client.sendmail("s@example.com", RECIPIENTS, MESSAGE) == {}
            # sendmail consumed the first recipient's reply; the others follow it
            assert [client.getreply() for _ in RECIPIENTS[1:]] == [(250, b"2.0.0 Ok: queued")] * 2
            assert client.noop() == (250, b"2.0.0 Ok")  # nothing else was left unread
            assert client.quit()[0] == 221
        finally:
            client.close()
    stats = server.stats
    assert (stats.sessions, stats.messages, stats.recipients, stats.bytes) == (1, 1, 3, len(MESSAGE))
