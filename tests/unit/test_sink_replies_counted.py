"""Every reply the sink sends is in `stats.replies`: those of the sessions, and those the server writes itself."""

from __future__ import annotations

import socket
import time

from loadkit.sink import FaultPlan, SinkServer
from tests.unit.test_sink_server import connect, read_replies


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def test_idle_timeout_421_is_counted_with_the_replies():
    with SinkServer("127.0.0.1:0", timeout=0.3) as server:
        sockets = [connect(server) for _ in range(5)]
        try:
            for sock in sockets:
                assert read_replies(sock, 1) == [b"220 loadkit-sink ESMTP loadkit"]
            for sock in sockets:
                assert read_replies(sock, 1) == [b"421 4.4.2 Error: timeout exceeded"]
            wait_until(lambda: server.stats.timeouts == 5)
        finally:
            for sock in sockets:
                sock.close()
    assert server.stats.reply_codes() == {"220": 5, "421": 5}


def test_idle_timeout_in_the_full_loop_is_counted_too():
    plan = FaultPlan().delay("noop", "1ms")
    with SinkServer("127.0.0.1:0", timeout=0.3, faults=plan) as server, connect(server) as sock:
        read_replies(sock, 1)
        sock.sendall(b"NOOP\r\n")
        assert read_replies(sock, 1) == [b"250 2.0.0 Ok"]
        assert read_replies(sock, 1) == [b"421 4.4.2 Error: timeout exceeded"]
        wait_until(lambda: server.stats.timeouts == 1)
    assert server.stats.reply_codes() == {"220": 1, "250": 1, "421": 1}


def drain_goodbyes(faults=None) -> SinkServer:
    """Two sessions; the first one's message reaches -M 1, the second then says NOOP and QUIT."""
    server = SinkServer("127.0.0.1:0", max_messages=1, faults=faults).start()
    try:
        with connect(server) as first, connect(server) as second, connect(server) as third:
            for sock in (first, second, third):
                read_replies(sock, 1)
            first.sendall(b"HELO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n")
            assert read_replies(first, 5)[-1] == b"250 2.0.0 Ok: queued"
            second.sendall(b"NOOP\r\n")
            assert read_replies(second, 1) == [b"421 4.3.0 Error: server shutting down"]
            third.sendall(b"QUIT\r\n")
            assert read_replies(third, 1) == [b"221 2.0.0 Bye"]
        assert server.wait(10)
    finally:
        server.stop()
    return server


def test_the_goodbyes_after_max_messages_are_counted():
    server = drain_goodbyes()
    assert server.stats.reply_codes() == {"220": 3, "221": 1, "250": 4, "354": 1, "421": 1}


def test_the_goodbyes_of_the_full_loop_are_counted():
    server = drain_goodbyes(FaultPlan().delay("vrfy", "1ms"))
    assert server.stats.reply_codes() == {"220": 3, "221": 1, "250": 4, "354": 1, "421": 1}


def test_a_timeout_on_a_closed_socket_counts_no_reply():
    with SinkServer("127.0.0.1:0", timeout=0.3) as server:
        sock = connect(server)
        read_replies(sock, 1)
        sock.shutdown(socket.SHUT_WR)  # the sink reads end of file and ends the session itself
        wait_until(lambda: server.stats.sessions == 1 and not server._connections)
        sock.close()
        time.sleep(0.5)
    assert server.stats.timeouts == 0 and server.stats.reply_codes() == {"220": 1}
