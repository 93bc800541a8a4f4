"""The sink's full loop over loopback: TLS, faults in time, a rejected greeting, replies counted."""

from __future__ import annotations

import socket
import time

import pytest

from loadkit.sink import FaultPlan, SinkError, SinkServer
from loadkit.sink import _server as sink_server
from loadkit.sink._tls import TlsSetupError
from tests.unit.test_sink_server import (
    HandDrivenTls,
    client_context,
    connect,
    fail_a_handshake,
    read_replies,
    wait_for_tls_failures,
)


def final_codes(replies: list[bytes]) -> list[bytes]:
    return [reply[:3] for reply in replies if reply[3:4] == b" "]


def test_starttls_then_a_transaction_inside_tls():
    with SinkServer("127.0.0.1:0") as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@x>\r\n")  # the MAIL must be dropped
            replies = read_replies(sock, 2)
            assert replies[-1] == b"220 2.0.0 Ready to start TLS"
            with client_context().wrap_socket(sock, server_hostname="loadkit-sink") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                tls.sendall(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nsecret\r\n.\r\nQUIT\r\n")
                replies = read_replies(tls, 6)
                assert b"250-STARTTLS" not in replies and b"250-AUTH PLAIN LOGIN" in replies
                assert final_codes(replies) == [b"250", b"250", b"250", b"354", b"250", b"221"]
    stats = server.stats
    assert (stats.messages, stats.bytes, stats.tls_sessions, stats.tls_failures) == (1, 8, 1, 0)
    assert stats.reply_codes() == {"220": 2, "221": 1, "250": 5, "354": 1}


def test_implicit_tls_and_a_failed_handshake():
    with SinkServer("127.0.0.1:0", implicit_tls=True) as server:
        assert server.url.startswith("smtps://127.0.0.1:")
        with socket.create_connection(server.address, timeout=5) as raw:
            with client_context().wrap_socket(raw) as tls:
                assert read_replies(tls, 1) == [b"220 loadkit-sink ESMTP loadkit"]
                tls.sendall(b"EHLO c\r\nQUIT\r\n")
                assert b"250-STARTTLS" not in read_replies(tls, 2)
        fail_a_handshake(server)
        wait_for_tls_failures(server, 1)
    assert (server.stats.tls_sessions, server.stats.tls_failures) == (1, 1)


def test_bad_certificate_files_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(SinkError, match="not a PEM certificate"):
        SinkServer("127.0.0.1:0", tls_cert=str(junk))
    with pytest.raises(SinkError, match="No such file"):
        SinkServer("127.0.0.1:0", tls_cert=str(tmp_path / "missing.pem"))


def test_auth_before_tls_depends_on_the_listening_address():
    with SinkServer("127.0.0.1:0", auth_plaintext=False) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"EHLO c\r\n")
            assert b"250-AUTH PLAIN LOGIN" not in read_replies(sock, 1)
    assert SinkServer("127.0.0.1:0").profile.plaintext_auth
    assert not SinkServer("0.0.0.0:0").profile.plaintext_auth


def test_a_rejected_greeting_wants_quit():
    with SinkServer("127.0.0.1:0", faults=FaultPlan().reject("connect", 554)) as server:
        with connect(server) as sock:
            assert read_replies(sock, 1) == [b"554 5.3.0 Error: CONNECT rejected (loadkit sink --reject)"]
            sock.sendall(b"EHLO c\r\nMAIL FROM:<a@b>\r\nQUIT\r\n")
            assert final_codes(read_replies(sock, 3)) == [b"503", b"503", b"221"]
            assert sock.recv(10) == b""
    assert server.stats.faults == {("reject", "connect"): 1}


@pytest.mark.parametrize("plan, expected", [
    (FaultPlan().shutdown("connect"), b"421 4.3.0 Error: server closing connection\r\n"),
    (FaultPlan().disconnect("connect"), b""),
    (FaultPlan().reject("connect", 421), b"421 4.3.0 Error: CONNECT rejected (loadkit sink --reject)\r\n"),
])
def test_greetings_that_close(plan, expected):
    with SinkServer("127.0.0.1:0", faults=plan) as server:
        with connect(server) as sock:
            received = b""
            while True:
                chunk = sock.recv(1000)
                if not chunk:
                    break
                received += chunk
    assert received == expected
    assert sum(server.stats.faults.values()) == 1


def test_a_delay_holds_the_reply_and_later_pipelined_replies():
    plan = FaultPlan().delay("rcpt", "150ms")
    with SinkServer("127.0.0.1:0", faults=plan) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            started = time.monotonic()
            sock.sendall(b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nNOOP\r\n")
            first = sock.recv(1000)  # what came before the delayed reply is sent at once
            assert first == b"250 loadkit-sink\r\n250 2.1.0 Ok\r\n"
            assert time.monotonic() - started < 0.12
            assert final_codes(read_replies(sock, 2)) == [b"250", b"250"]
            assert 0.15 <= time.monotonic() - started < 2.0
    assert server.stats.faults == {("delay", "rcpt"): 1}


def test_a_dripped_reply_arrives_whole_and_slowly():
    plan = FaultPlan().drip("helo", 100)  # "250 loadkit-sink\r\n" is 18 bytes: about 0.17 s
    with SinkServer("127.0.0.1:0", faults=plan) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            started = time.monotonic()
            sock.sendall(b"HELO c\r\n")
            pieces = []
            while b"".join(pieces).count(b"\r\n") < 1:
                pieces.append(sock.recv(100))
            elapsed = time.monotonic() - started
    assert b"".join(pieces) == b"250 loadkit-sink\r\n" and len(pieces) > 2
    assert 0.12 <= elapsed < 2.0


def test_replies_without_enhanced_codes_on_the_wire():
    with SinkServer("127.0.0.1:0", capabilities=("PIPELINING", "SIZE")) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"EHLO c\r\nMAIL FROM:<a@b>\r\nQUIT\r\n")
            assert read_replies(sock, 3) == [
                b"250-loadkit-sink", b"250-PIPELINING", b"250 SIZE 10240000", b"250 Ok", b"221 Bye",
            ]


def test_a_long_delay_is_not_the_clients_timeout():
    plan = FaultPlan().delay("noop", "700ms")
    with SinkServer("127.0.0.1:0", faults=plan, timeout=0.4) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"NOOP\r\n")
            assert read_replies(sock, 1) == [b"250 2.0.0 Ok"]
    assert server.stats.timeouts == 0


TLS_RECORD_TYPES = {20, 21, 22, 23}  # change_cipher_spec, alert, handshake, application_data


def tls_record_types(raw: bytes) -> list[int]:
    """The content type of each TLS record in `raw`; a clear-text byte there is not a record type."""
    types = []
    while raw:
        types.append(raw[0])
        if raw[0] not in TLS_RECORD_TYPES or len(raw) < 5:
            break
        raw = raw[5 + int.from_bytes(raw[3:5], "big"):]
    return types


def test_an_idle_tls_session_times_out_without_clear_text():
    with SinkServer("127.0.0.1:0", timeout=1.0) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"STARTTLS\r\n")
            read_replies(sock, 1)
            client = HandDrivenTls(sock)  # so every byte after the handshake is seen raw
            client.handshake()
            started = time.monotonic()
            raw = client.raw_until_closed()
            assert time.monotonic() - started < 3.0
            assert all(kind in TLS_RECORD_TYPES for kind in tls_record_types(raw)), raw[:80]
    assert (server.stats.timeouts, server.stats.tls_sessions) == (1, 1)


@pytest.mark.parametrize("capabilities, expected", [
    (None, b"250 loadkit-sink\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
    (("PIPELINING",), b"250 loadkit-sink\r\n250 Ok\r\n250 Ok\r\n"),  # no ENHANCEDSTATUSCODES: the dripped one too
])
def test_a_dripped_reply_keeps_or_loses_its_enhanced_code_like_the_others(capabilities, expected):
    keywords = {"capabilities": capabilities} if capabilities else {}
    with SinkServer("127.0.0.1:0", faults=FaultPlan().drip("rcpt", 1000), **keywords) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
            received = b""
            while received.count(b"\r\n") < 3:
                chunk = sock.recv(1000)
                assert chunk
                received += chunk
    assert received == expected
    assert server.stats.faults == {("drip", "rcpt"): 1}


def test_a_certificate_that_cannot_be_made_at_starttls_is_counted_and_said(monkeypatch):
    def cannot_make(*args, **keywords):
        raise TlsSetupError("openssl is missing")

    monkeypatch.setattr(sink_server, "server_context", cannot_make)
    with SinkServer("127.0.0.1:0") as server:
        assert server.tls_problem is None  # STARTTLS offered: the certificate is made at the first one
        for _ in range(2):
            with connect(server) as sock:
                read_replies(sock, 1)
                sock.sendall(b"EHLO c\r\nSTARTTLS\r\n")
                assert read_replies(sock, 2)[-1] == b"220 2.0.0 Ready to start TLS"
                assert sock.recv(100) == b""  # no TLS to start: the session ends
    assert server.tls_problem == "openssl is missing"
    assert (server.stats.tls_sessions, server.stats.tls_failures) == (0, 2)


def test_tls_sessions_and_failed_handshakes_add_up():
    with SinkServer("127.0.0.1:0", implicit_tls=True) as server:
        for _ in range(2):
            with socket.create_connection(server.address, timeout=5) as raw:
                with client_context().wrap_socket(raw) as tls:
                    tls.sendall(b"QUIT\r\n")
                    assert read_replies(tls, 2) == [b"220 loadkit-sink ESMTP loadkit", b"221 2.0.0 Bye"]
            fail_a_handshake(server)
        wait_for_tls_failures(server, 2)
    assert (server.stats.tls_sessions, server.stats.tls_failures) == (2, 2)


def test_a_delayed_greeting_then_the_session_goes_on():
    with SinkServer("127.0.0.1:0", faults=FaultPlan().delay("connect", "50ms").delay("noop", "1ms")) as server:
        with connect(server) as sock:
            assert read_replies(sock, 1) == [b"220 loadkit-sink ESMTP loadkit"]
            sock.sendall(b"NOOP\r\nNOOP\r\nQUIT\r\n")
            assert read_replies(sock, 3) == [b"250 2.0.0 Ok", b"250 2.0.0 Ok", b"221 2.0.0 Bye"]
    # each delayed reply is counted once, like the others
    assert server.stats.replies[b"250 2.0.0 Ok\r\n"] == 2
    assert server.stats.faults == {("delay", "connect"): 1, ("delay", "noop"): 2}


def test_a_temporary_refusal_of_the_greeting_ends_the_session():
    """RFC 5321 3.1: a 4yz greeting other than 421 also closes; only a 5yz one waits for QUIT."""
    with SinkServer("127.0.0.1:0", faults=FaultPlan().reject("connect", 450)) as server:
        with connect(server) as sock:
            received = b""
            while chunk := sock.recv(1000):
                received += chunk
    assert received == b"450 4.3.0 Error: CONNECT rejected (loadkit sink --reject)\r\n"



def test_starttls_in_a_session_with_faults_and_the_faults_go_on_inside_tls():
    """A fault plan puts the session in the full loop; STARTTLS there swaps the channel, not the session."""
    plan = FaultPlan().delay("noop", "1ms")
    with SinkServer("127.0.0.1:0", faults=plan) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"NOOP\r\nEHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@x>\r\n")  # the MAIL must be dropped
            replies = read_replies(sock, 3)
            assert final_codes(replies) == [b"250", b"250", b"220"]
            assert replies[-1] == b"220 2.0.0 Ready to start TLS"
            with client_context().wrap_socket(sock, server_hostname="loadkit-sink") as tls:
                tls.sendall(b"EHLO c\r\nNOOP\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nsecret\r\n.\r\nQUIT\r\n")
                replies = read_replies(tls, 7)
                assert b"250-STARTTLS" not in replies and b"250-AUTH PLAIN LOGIN" in replies
                assert final_codes(replies) == [b"250", b"250", b"250", b"250", b"354", b"250", b"221"]
                assert tls.recv(10) == b""  # closed after QUIT
    stats = server.stats
    assert (stats.messages, stats.bytes, stats.tls_sessions, stats.tls_failures) == (1, 8, 1, 0)
    assert stats.faults == {("delay", "noop"): 2}
    assert stats.reply_codes() == {"220": 2, "221": 1, "250": 7, "354": 1}


def test_starttls_with_faults_when_no_certificate_can_be_made(monkeypatch):
    def cannot_make(*args, **keywords):
        raise TlsSetupError("openssl is missing")

    monkeypatch.setattr(sink_server, "server_context", cannot_make)
    with SinkServer("127.0.0.1:0", faults=FaultPlan().delay("noop", "1ms")) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"EHLO c\r\nSTARTTLS\r\n")
            assert read_replies(sock, 2)[-1] == b"220 2.0.0 Ready to start TLS"
            assert sock.recv(100) == b""  # no TLS to start: the session ends
    assert (server.stats.tls_sessions, server.stats.tls_failures) == (0, 1)
