"""The sink's server over loopback: who counts as idle, and replies that wait for room."""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loadkit.sink import FaultPlan, SinkServer
from loadkit.sink._protocol import S421_TIMEOUT
from loadkit.sink._server import RECV_SIZE
from tests.unit.test_sink_server import connect, read_replies

# Both loops: the plain one, and the full one that a fault plan (here on a verb never sent) selects.
LOOPS = [
    pytest.param({}, id="plain-loop"),
    pytest.param({"faults": FaultPlan().delay("vrfy", "1ms")}, id="full-loop"),
]


@pytest.mark.parametrize("keywords", LOOPS)
def test_a_session_that_keeps_talking_past_the_idle_timeout_is_not_timed_out(keywords):
    """The timeout counts the client's silence, not the session's age: every read starts it again."""
    with SinkServer("127.0.0.1:0", timeout=0.4, **keywords) as server, connect(server) as sock:
        read_replies(sock, 1)
        started = time.monotonic()
        for _ in range(12):  # about 1.2 s of talk: three idle timeouts' worth
            sock.sendall(b"NOOP\r\n")
            assert read_replies(sock, 1) == [b"250 2.0.0 Ok"]
            time.sleep(0.1)
        assert time.monotonic() - started > 2 * server.timeout
        sock.sendall(b"QUIT\r\n")
        assert read_replies(sock, 1) == [b"221 2.0.0 Bye"]
    assert server.stats.timeouts == 0
    assert server.stats.replies[b"250 2.0.0 Ok\r\n"] == 12


@pytest.mark.parametrize("keywords", LOOPS)
def test_each_idle_session_is_timed_out_and_counted(keywords):
    with SinkServer("127.0.0.1:0", timeout=0.3, **keywords) as server:
        socks = [connect(server) for _ in range(2)]
        try:
            for sock in socks:
                read_replies(sock, 1)
            socks[0].sendall(b"NOOP\r\n")  # a session that said something once is idle all the same
            assert read_replies(socks[0], 1) == [b"250 2.0.0 Ok"]
            for sock in socks:
                assert read_replies(sock, 1) == [b"421 4.4.2 Error: timeout exceeded"]
                assert sock.recv(10) == b""
        finally:
            for sock in socks:
                sock.close()
    assert server.stats.timeouts == 2
    assert server.stats.replies[S421_TIMEOUT] == 2


def queued(sock: socket.socket) -> int:
    """Bytes waiting in the socket's receive queue."""
    return int.from_bytes(fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"), "little")


@contextmanager
def unix_sink(**keywords) -> Iterator[SinkServer]:
    """A sink listening on a unix socket in a temporary folder of its own."""
    with tempfile.TemporaryDirectory() as directory:
        with SinkServer(f"unix:{os.path.join(directory, 'sink.sock')}", **keywords) as server:
            yield server


def ehlo_reply(sock: socket.socket) -> bytes:
    """After the banner, say EHLO: the reply as the sink sends it, every line."""
    read_replies(sock, 1)
    sock.sendall(b"EHLO c\r\n")
    reply = b""
    while not reply.endswith(b"250 CHUNKING\r\n"):
        reply += sock.recv(65536)
    return reply


def receive(sock: socket.socket, size: int) -> bytes:
    """At least `size` bytes; the sink closing before that fails the test."""
    received = bytearray()
    while len(received) < size:
        chunk = sock.recv(1 << 20)
        assert chunk
        received += chunk
    return bytes(received)


@pytest.mark.parametrize("keywords", LOOPS)
def test_replies_wait_for_room_when_the_client_does_not_read(keywords):
    """Replies bigger than the socket buffer are sent whole, in order, once the client reads."""
    with unix_sink(**keywords) as server, connect(server) as sock:
        one = ehlo_reply(sock)
        batch = b"EHLO c\r\n" * (RECV_SIZE // 8)  # one read's worth: some 1.1 MB of replies
        sock.sendall(batch * 2)
        expected = one * (2 * RECV_SIZE // 8)
        time.sleep(0.3)  # the sink fills the buffer and must wait for room
        assert queued(sock) < len(expected)
        assert receive(sock, len(expected)) == expected
        sock.sendall(b"QUIT\r\n")
        assert read_replies(sock, 1) == [b"221 2.0.0 Bye"]
    assert server.stats.reply_codes() == {"220": 1, "221": 1, "250": 1 + 2 * RECV_SIZE // 8}


@pytest.mark.parametrize("keywords", LOOPS)
def test_a_reply_that_finds_the_buffer_full_waits_and_is_sent_whole(keywords):
    """Commands one at a time, never read: the buffer fills between replies, not inside one."""
    count = 2000  # some 330 KB of replies, and more socket memory still: past the default buffer
    with unix_sink(**keywords) as server, connect(server) as sock:
        one = ehlo_reply(sock)

        def talk():
            for _ in range(count):
                sock.sendall(b"EHLO c\r\n")
                time.sleep(0.0005)  # one command per read on the sink's side

        talker = threading.Thread(target=talk)
        talker.start()
        waiting = -1
        while talker.is_alive() and queued(sock) != waiting:  # until done, or stuck: the sink waits for room
            waiting = queued(sock)
            talker.join(0.2)
        expected = one * count
        assert queued(sock) < len(expected)
        received = receive(sock, len(expected))
        talker.join(5)
        assert not talker.is_alive()
        assert received == expected
    assert server.stats.reply_codes()["250"] == 1 + count


def wait_until_no_session(server: SinkServer) -> None:
    deadline = time.monotonic() + 5
    while server._connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server._connections


@pytest.mark.parametrize("keywords", LOOPS)
def test_a_client_that_does_not_read_holds_up_no_other_session(keywords):
    """While one session waits for room to send, the others are read and answered."""
    with unix_sink(**keywords) as server, connect(server) as stuck, connect(server) as other:
        read_replies(stuck, 1)
        read_replies(other, 1)
        stuck.sendall(b"EHLO c\r\n" * (RECV_SIZE // 8))
        time.sleep(0.2)  # the sink now waits for room on `stuck`
        assert queued(stuck) < 1 << 20
        other.sendall(b"NOOP\r\nQUIT\r\n")
        assert read_replies(other, 2) == [b"250 2.0.0 Ok", b"221 2.0.0 Bye"]
        receive(stuck, 8 * (RECV_SIZE // 8))  # every reply is longer than its command
    assert server.stats.reply_codes()["250"] == 1 + RECV_SIZE // 8


@pytest.mark.parametrize("keywords", LOOPS)
def test_a_session_that_ends_without_starttls_starts_no_tls(keywords):
    with SinkServer("127.0.0.1:0", **keywords) as server:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"EHLO c\r\n")
            read_replies(sock, 1)
        wait_until_no_session(server)  # the client hung up without QUIT
        assert (server.stats.sessions, server.stats.tls_sessions, server.stats.tls_failures) == (1, 0, 0)


@pytest.mark.parametrize("keywords", LOOPS)
def test_once_max_messages_is_reached_every_session_gets_a_goodbye_and_each_is_counted(keywords):
    server = SinkServer("127.0.0.1:0", max_messages=1, **keywords).start()
    try:
        socks = [connect(server) for _ in range(3)]
        try:
            for sock in socks:
                read_replies(sock, 1)
            socks[0].sendall(b"HELO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n")
            assert read_replies(socks[0], 5)[-1] == b"250 2.0.0 Ok: queued"
            time.sleep(0.05)  # the drain starts once the session that reached the limit yields
            for sock, said in zip(socks, (b"NOOP\r\n", b"NOOP\r\n", b"QUIT\r\n")):
                sock.sendall(said)
            assert read_replies(socks[0], 1) == [b"421 4.3.0 Error: server shutting down"]
            assert read_replies(socks[1], 1) == [b"421 4.3.0 Error: server shutting down"]
            assert read_replies(socks[2], 1) == [b"221 2.0.0 Bye"]
            for sock in socks:
                assert sock.recv(10) == b""
        finally:
            for sock in socks:
                sock.close()
        assert server.wait(5)
    finally:
        server.stop()
    stats = server.stats
    assert (stats.messages, stats.sessions, stats.tls_sessions, stats.tls_failures) == (1, 3, 0, 0)
    assert stats.reply_codes() == {"220": 3, "221": 1, "250": 4, "354": 1, "421": 2}
