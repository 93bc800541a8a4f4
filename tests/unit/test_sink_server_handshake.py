"""The sink's idle timeout around TLS: a slow handshake is not silence, a silent one still ends.

The client is Python's TLS on memory buffers (`HandDrivenTls`), so the test
decides when each byte of the handshake leaves: no race with the sink's
sweeper, only gaps far shorter or far longer than its timeout.
"""

from __future__ import annotations

import os
import time

import gevent
import pytest

from loadkit.sink import SinkServer
from loadkit.sink import _server as sink_server
from tests.unit.test_sink_server import HandDrivenTls, client_context, connect, read_replies

TIMEOUT = 0.8  # the sink's idle timeout here
GAP = 0.1  # between two pieces of a slow ClientHello: an eighth of the timeout, room for a busy machine
PIECES = 21  # twenty gaps: a handshake that lasts two and a half timeouts
# The sweeper ends a silent session between one timeout and one sweep period (a quarter of
# it) after its last read; the rest is room for a busy machine to run the sweeper late.
LATE = TIMEOUT / 4 + 1.0


def tls_begins(server: SinkServer, sock) -> None:
    """Up to the first byte of the handshake: at once on the implicit-TLS port, else after STARTTLS."""
    if server.settings.implicit_tls:
        return
    assert read_replies(sock, 1) == [b"220 loadkit-sink ESMTP loadkit"]
    sock.sendall(b"STARTTLS\r\n")
    assert read_replies(sock, 1) == [b"220 2.0.0 Ready to start TLS"]


def tls_failures_counted(server: SinkServer, count: int) -> None:
    """The session counts its failed handshake when it wakes to the closed socket: soon, not at once."""
    deadline = time.monotonic() + 5
    while server.stats.tls_failures < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stats.tls_failures == count


def open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "implicit-tls"])
def test_a_slow_handshake_is_not_an_idle_session_and_the_silence_after_it_is(implicit_tls):
    with SinkServer("127.0.0.1:0", timeout=TIMEOUT, implicit_tls=implicit_tls) as server, connect(server) as sock:
        tls_begins(server, sock)
        client = HandDrivenTls(sock)
        started = time.monotonic()
        client.handshake(pieces=PIECES, gap=GAP)
        assert time.monotonic() - started > 2 * TIMEOUT  # the handshake outlasted the timeout twice over
        if implicit_tls:
            assert client.read_replies(1) == [b"220 loadkit-sink ESMTP loadkit"]
        last_word = time.monotonic()
        client.send(b"EHLO c\r\n")
        assert client.read_replies(1)[-1] == b"250 CHUNKING"
        assert server.stats.timeouts == 0
        client.raw_until_closed()
        idle = time.monotonic() - last_word
        assert TIMEOUT <= idle < TIMEOUT + LATE
    assert (server.stats.timeouts, server.stats.tls_sessions, server.stats.tls_failures) == (1, 1, 0)


# A failed handshake's socket left to the garbage collector fails the test, not only warns.
@pytest.mark.filterwarnings("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")
def test_a_handshake_that_stops_half_way_is_timed_out():
    """Handshake bytes count as the client's words, not the handshake itself: a stalled one still ends."""
    descriptors = open_descriptors()
    with SinkServer("127.0.0.1:0", timeout=TIMEOUT) as server, connect(server) as sock:
        tls_begins(server, sock)
        client = HandDrivenTls(sock)
        hello = client.client_hello()
        stalled = time.monotonic()
        sock.sendall(hello[:len(hello) // 2])
        assert client.raw_until_closed() == b""  # no alert, no clear text: closed
        idle = time.monotonic() - stalled
        assert TIMEOUT <= idle < TIMEOUT + LATE
        tls_failures_counted(server, 1)
    assert (server.stats.timeouts, server.stats.tls_sessions) == (1, 0)
    assert open_descriptors() == descriptors  # the failed handshake's descriptor too


def test_making_the_certificate_at_the_first_starttls_is_not_the_clients_silence(monkeypatch):
    making = sink_server.server_context

    def slow_to_make(*args, **keywords):
        # As openssl in a subprocess under a monkey-patched hub: the sweeper runs meanwhile.
        gevent.sleep(3 * TIMEOUT)
        return making(*args, **keywords)

    monkeypatch.setattr(sink_server, "server_context", slow_to_make)
    with SinkServer("127.0.0.1:0", timeout=TIMEOUT) as server, connect(server) as sock:
        tls_begins(server, sock)
        started = time.monotonic()
        with client_context().wrap_socket(sock, server_hostname="loadkit-sink") as tls:
            assert time.monotonic() - started >= 3 * TIMEOUT
            tls.sendall(b"EHLO c\r\n")
            assert read_replies(tls, 1)[-1] == b"250 CHUNKING"
            assert server.stats.timeouts == 0
            tls.sendall(b"QUIT\r\n")
            assert read_replies(tls, 1) == [b"221 2.0.0 Bye"]
    assert (server.stats.timeouts, server.stats.tls_sessions, server.stats.tls_failures) == (0, 1, 0)
