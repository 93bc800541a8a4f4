"""Python's smtplib against the sink: starttls() and login(), SMTP_SSL, SMTPUTF8, 8BITMIME, DSN."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from loadkit.sink import SinkServer

MESSAGE = b"From: s@example.com\r\nSubject: tls\r\n\r\nbody\r\n"


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_starttls_login_and_messages(tmp_path):
    users = tmp_path / "users"
    users.write_text("user@example.com:pa55word\n")
    with SinkServer("127.0.0.1:0", auth_users=str(users), auth_plaintext=False) as server:
        host, port = server.address
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo("client.test")
            assert client.has_extn("starttls") and not client.has_extn("auth")
            assert client.starttls(context=insecure())[0] == 220
            client.ehlo("client.test")  # RFC 3207: the session starts over
            assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"] and not client.has_extn("starttls")
            with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
                client.login("user@example.com", "wrong")
            assert failure.value.smtp_code == 535
            client.login("user@example.com", "pa55word")
            for _ in range(3):
                assert client.sendmail("s@example.com", ["a@example.com", "b@example.com"], MESSAGE) == {}
    stats = server.stats
    assert (stats.messages, stats.recipients, stats.bytes) == (3, 6, 3 * len(MESSAGE))
    assert (stats.tls_sessions, stats.auth_ok) == (1, 1)
    assert stats.auth_failed == len(("PLAIN", "LOGIN"))  # smtplib tries each offered mechanism


def test_smtp_ssl_against_implicit_tls():
    with SinkServer("127.0.0.1:0", implicit_tls=True) as server:
        host, port = server.address
        with smtplib.SMTP_SSL(host, port, timeout=10, context=insecure()) as client:
            client.login("anyone", "anything")
            assert client.sendmail("s@example.com", ["a@example.com"], MESSAGE) == {}
    assert (server.stats.messages, server.stats.tls_sessions, server.stats.auth_ok) == (1, 1, 1)


def test_utf8_eight_bit_and_dsn_parameters():
    with SinkServer("127.0.0.1:0") as server:
        host, port = server.address
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo("client.test")
            assert all(client.has_extn(name) for name in ("smtputf8", "8bitmime", "dsn", "size", "chunking"))
            body = "Subject: Grüße\r\n\r\nÄ body in UTF-8\r\n".encode()
            refused = client.sendmail("jörg@example.com", ["zoë@example.com"], body,
                                      mail_options=["SMTPUTF8", "BODY=8BITMIME"],
                                      rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;zoe@example.com"])
            assert refused == {}
            code, _ = client.mail("jörg@example.com".encode().decode("latin-1"))  # no SMTPUTF8 declared
            assert code == 553
    assert (server.stats.messages, server.stats.bytes) == (1, len(body))


def test_size_limit_on_mail_and_on_data():
    with SinkServer("127.0.0.1:0", max_size=1000) as server:
        host, port = server.address
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo("client.test")
            assert client.esmtp_features["size"] == "1000"
            with pytest.raises(smtplib.SMTPSenderRefused) as declared:
                client.sendmail("s@example.com", ["a@example.com"], b"x" * 2000)  # smtplib declares SIZE=2000
            assert declared.value.smtp_code == 552
            client.rset()
            client.mail("s@example.com")  # no SIZE declared: refused after the data
            client.rcpt("a@example.com")
            assert client.data(b"y" * 2000) == (552, b"5.3.4 Message size exceeds fixed limit")
    assert server.stats.messages == 0 and server.stats.reply_codes()["552"] == 2
