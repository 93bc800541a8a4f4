"""The sink's server over loopback: who counts as idle, and replies that wait for room."""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import termios
import time

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


@pytest.mark.parametrize("keywords", LOOPS)
def test_replies_wait_for_room_when_the_client_does_not_read(keywords):
    """Replies bigger than the socket buffer are sent whole, in order, once the client reads."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "sink.sock")
        with SinkServer(f"unix:{path}", **keywords) as server, connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"EHLO c\r\n")
            one = b""
            while not one.endswith(b"250 CHUNKING\r\n"):
                one += sock.recv(65536)
            batch = b"EHLO c\r\n" * (RECV_SIZE // 8)  # one read's worth: some 1.1 MB of replies
            sock.sendall(batch * 2)
            expected = one * (2 * RECV_SIZE // 8)
            time.sleep(0.3)  # the sink fills the buffer and must wait for room
            assert queued(sock) < len(expected)
            received = bytearray()
            while len(received) < len(expected):
                chunk = sock.recv(1 << 20)
                assert chunk
                received += chunk
            assert received == expected
            sock.sendall(b"QUIT\r\n")
            assert read_replies(sock, 1) == [b"221 2.0.0 Bye"]
    assert server.stats.reply_codes() == {"220": 1, "221": 1, "250": 1 + 2 * RECV_SIZE // 8}
