"""The sink's sockets, driven by an in-process client over loopback."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import gevent
import gevent.socket
import pytest

from loadkit.sink import SinkError, SinkServer
from loadkit.sink._server import DRAIN_GRACE
from loadkit.urls import Target
from tests.conftest import cannot_run


def connect(server: SinkServer) -> socket.socket:
    family = socket.AF_UNIX if isinstance(server.address, str) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(server.address)
    return sock


def read_replies(sock: socket.socket, count: int) -> list[bytes]:
    """Read until `count` final reply lines (``NNN `` lines) arrived."""
    data = b""
    while sum(1 for line in data.split(b"\r\n") if line[3:4] == b" ") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return [line for line in data.split(b"\r\n") if line]


def fail_a_handshake(server: SinkServer) -> None:
    """Plain text to an implicit-TLS sink, read until it closes: one failed handshake."""
    with connect(server) as plain:
        plain.sendall(b"EHLO this is not a TLS client hello\r\n")
        try:
            while plain.recv(100):  # at most a TLS alert, then the sink closes
                pass
        except ConnectionResetError:
            pass


def wait_for_tls_failures(server: SinkServer, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while server.stats.tls_failures < count and time.monotonic() < deadline:
        time.sleep(0.01)


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the sink's own self-signed certificate
    return context


class HandDrivenTls:
    """Python's TLS client on memory buffers over `sock`: the test says when each byte goes, and sees every byte."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = client_context().wrap_bio(self.incoming, self.outgoing)

    def client_hello(self) -> bytes:
        """The first flight of the handshake, made but not sent."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return self.outgoing.read()
        raise AssertionError("a handshake cannot end before the server says anything")

    def handshake(self, pieces: int = 1, gap: float = 0.0) -> None:
        """The whole handshake, the ClientHello sent in `pieces` parts `gap` seconds apart."""
        hello = self.client_hello()
        size = -(-len(hello) // pieces)
        for start in range(0, len(hello), size):
            if start:
                time.sleep(gap)
            self.sock.sendall(hello[start:start + size])
        while True:
            self._receive()
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
        self.sock.sendall(self.outgoing.read())  # the client's last flight

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.sock.sendall(self.outgoing.read())

    def read_replies(self, count: int) -> list[bytes]:
        """Like `read_replies`, inside TLS."""
        data = b""
        while sum(1 for line in data.split(b"\r\n") if line[3:4] == b" ") < count:
            try:
                data += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._receive()
        return [line for line in data.split(b"\r\n") if line]

    def raw_until_closed(self) -> bytes:
        """Every byte the sink sends, undeciphered, until it closes the connection."""
        raw = b""
        try:
            while chunk := self.sock.recv(65536):
                raw += chunk
        except ConnectionResetError:
            pass  # closed with bytes of ours unread
        return raw

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the sink closed the connection")
        self.incoming.write(chunk)


def test_pipelined_session_in_one_write_over_loopback():
    with SinkServer("127.0.0.1:0") as server:
        assert server.address[0] == "127.0.0.1" and server.address[1] > 0
        assert server.url == f"smtp://127.0.0.1:{server.address[1]}"
        with connect(server) as sock:
            assert read_replies(sock, 1) == [b"220 loadkit-sink ESMTP loadkit"]
            sock.sendall(
                b"EHLO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhello\r\n..dot\r\n.\r\n"
                b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\nQUIT\r\n"
            )
            replies = read_replies(sock, 10)
            assert replies[:10] == [b"250-loadkit-sink", b"250-PIPELINING", b"250-SIZE 10240000",
                                    b"250-STARTTLS", b"250-AUTH PLAIN LOGIN", b"250-ENHANCEDSTATUSCODES",
                                    b"250-8BITMIME", b"250-DSN", b"250-SMTPUTF8", b"250 CHUNKING"]
            assert replies[-1] == b"221 2.0.0 Bye"
            assert [r[:3] for r in replies if r[3:4] == b" "] == [
                b"250", b"250", b"250", b"354", b"250", b"250", b"250", b"354", b"250", b"221"
            ]
            assert sock.recv(10) == b""  # closed after QUIT
    assert server.stats.as_dict()["sessions"] == 1
    assert (server.stats.messages, server.stats.recipients, server.stats.bytes) == (2, 2, len(b"hello\r\n.dot\r\n"))


def test_terminator_split_across_writes_over_loopback():
    with SinkServer("127.0.0.1:0") as server, connect(server) as sock:
        read_replies(sock, 1)
        sock.sendall(b"HELO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
        assert read_replies(sock, 4)[-1].startswith(b"354")
        for piece in (b"body\r", b"\n", b".", b"\r", b"\n"):
            sock.sendall(piece)
            time.sleep(0.02)
        assert read_replies(sock, 1) == [b"250 2.0.0 Ok: queued"]
        assert (server.stats.messages, server.stats.bytes) == (1, 6)


def test_lmtp_replies_once_per_recipient_over_loopback():
    with SinkServer("127.0.0.1:0", lmtp=True, hostname="lmtp.test") as server, connect(server) as sock:
        assert server.url.startswith("lmtp://")
        assert read_replies(sock, 1) == [b"220 lmtp.test LMTP loadkit"]
        sock.sendall(b"LHLO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<1@d>\r\nRCPT TO:<2@d>\r\nRCPT TO:<3@d>\r\nDATA\r\n")
        read_replies(sock, 6)
        sock.sendall(b"x\r\n.\r\n")
        assert read_replies(sock, 3) == [b"250 2.0.0 Ok: queued"] * 3
        assert (server.stats.messages, server.stats.recipients) == (1, 3)


def test_max_messages_stops_the_server_after_answering():
    server = SinkServer(Target("smtp", "127.0.0.1", 0), max_messages=2).start()
    try:
        assert not server.wait(0.05)
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"HELO me\r\n" + b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n" * 2)
            replies = read_replies(sock, 9)
            assert replies[-1] == b"250 2.0.0 Ok: queued" and len(replies) == 9
        assert server.wait(5)
        with pytest.raises(OSError):
            connect(server).close()
    finally:
        server.stop()
    assert server.stats.messages == 2


def test_idle_sessions_get_421_and_are_closed():
    with SinkServer("127.0.0.1:0", timeout=0.3) as server, connect(server) as sock:
        read_replies(sock, 1)
        started = time.monotonic()
        assert read_replies(sock, 1) == [b"421 4.4.2 Error: timeout exceeded"]
        assert sock.recv(10) == b""
        assert 0.25 < time.monotonic() - started < 3
        assert server.stats.timeouts == 1


def test_many_concurrent_sessions():
    with SinkServer("127.0.0.1:0") as server:
        socks = [connect(server) for _ in range(50)]
        for sock in socks:
            read_replies(sock, 1)
            sock.sendall(b"HELO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
        for sock in socks:
            read_replies(sock, 4)
            sock.sendall(b"12345\r\n.\r\nQUIT\r\n")
        for sock in socks:
            assert read_replies(sock, 2)[-2:] == [b"250 2.0.0 Ok: queued", b"221 2.0.0 Bye"]
            sock.close()
    assert (server.stats.sessions, server.stats.messages, server.stats.bytes) == (50, 50, 350)


def test_unix_socket_replaces_a_stale_socket_file_but_not_a_live_one():
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "sink.sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()  # the file stays, nobody listens
        with SinkServer(f"unix:{path}") as server:
            assert server.address == path
            assert server.url == f"smtp+unix://{path}"
            with connect(server) as sock:
                assert read_replies(sock, 1)[0].startswith(b"220 ")
            with pytest.raises(SinkError, match="in use"):
                SinkServer(f"unix:{path}").start()
        assert not os.path.exists(path)  # removed on stop
        with open(path, "w"):
            pass
        with pytest.raises(SinkError, match="not a socket"):
            SinkServer(f"unix:{path}").start()


def test_address_in_use_is_a_one_line_error():
    with SinkServer("127.0.0.1:0") as server:
        with pytest.raises(SinkError) as caught:
            SinkServer(f"127.0.0.1:{server.address[1]}").start()
        assert "in use" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(SinkError, match="out of range"):
        SinkServer("127.0.0.1:70000")


def test_serves_in_the_callers_hub_without_monkey_patching():
    """Inside gevent (as next to Locust users), sessions are greenlets of this thread."""
    server = SinkServer("127.0.0.1:0").start(in_thread=False)
    try:
        assert not server.in_thread

        def client():
            sock = gevent.socket.create_connection(server.address, timeout=5)
            sock.recv(100)
            sock.sendall(b"HELO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n")
            data = b""
            while not data.endswith(b"221 2.0.0 Bye\r\n"):
                data += sock.recv(1000)
            sock.close()
            return data

        replies = gevent.spawn(client).get(timeout=5)
        assert replies.count(b"\r\n") == 6
        assert (server.stats.sessions, server.stats.messages, server.stats.bytes) == (1, 1, 4)
    finally:
        server.stop()


def test_stop_from_another_thread_and_twice():
    server = SinkServer("127.0.0.1:0").start()
    sock = connect(server)
    read_replies(sock, 1)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(10)
    assert server.wait(1)
    assert sock.recv(10) == b""  # sessions are closed too
    sock.close()
    server.stop()
    assert server.stats.duration >= 0


def test_under_monkey_patching_sessions_are_greenlets_of_the_callers_hub():
    """As in `loadkit demo`: Locust has patched the standard library, smtplib is cooperative."""
    script = """
from gevent import monkey; monkey.patch_all()
import smtplib
from loadkit.sink import SinkServer
server = SinkServer("127.0.0.1:0").start()
with smtplib.SMTP(*server.address, timeout=5) as client:
    client.sendmail("a@b", ["c@d", "e@f"], b"x\\r\\n")
server.stop()
print(server.in_thread, server.stats.messages, server.stats.recipients, server.stats.bytes)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "1", "2", "3"]


def test_without_monkey_patching_start_serves_from_a_thread():
    with SinkServer("127.0.0.1:0") as server:
        assert server.in_thread
        assert any(thread.name == "loadkit-sink" for thread in threading.enumerate())
    assert not any(thread.name == "loadkit-sink" for thread in threading.enumerate())


def ipv6_sink() -> SinkServer:
    """A sink started on ::1; the test cannot run on a machine without IPv6 loopback."""
    if not socket.has_ipv6:
        cannot_run("no IPv6 on this machine")
    try:
        return SinkServer("[::1]:0").start()
    except SinkError as error:
        cannot_run(f"cannot bind ::1 here: {error}")


def test_ipv6_loopback():
    with ipv6_sink() as server:
        assert server.address[0] == "::1"
        assert server.url == f"smtp://[::1]:{server.address[1]}"
        with socket.create_connection(server.address, timeout=5) as sock:
            assert sock.recv(100).startswith(b"220 ")


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "[::1]:0"])
def test_every_session_socket_sends_at_once(listen):
    """TCP_NODELAY on each session: a reply written in pieces must not wait for the client's delayed ACK."""
    try:
        server = SinkServer(listen).start()
    except SinkError:
        pytest.skip(f"cannot listen on {listen}")
    with server, socket.create_connection(server.address[:2], timeout=5) as sock:
        read_replies(sock, 1)
        (connection,) = server._connections
        assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_once_max_messages_is_reached_no_new_session_starts_and_the_last_quit_stops_the_server():
    server = SinkServer("127.0.0.1:0", max_messages=1).start()
    try:
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"HELO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n")
            assert read_replies(sock, 5)[-1] == b"250 2.0.0 Ok: queued"
            # The session stays open: the server waits for its QUIT, but soon takes no one else.
            deadline = time.monotonic() + DRAIN_GRACE / 2
            probes = 0  # connections made before the drain closed the listener (some never became sessions)
            while True:
                try:
                    probe = connect(server)
                except OSError:
                    break
                probe.close()
                probes += 1
                assert time.monotonic() < deadline, "still accepting sessions after max_messages"
                time.sleep(0.01)
            sock.sendall(b"QUIT\r\n")
            assert read_replies(sock, 1) == [b"221 2.0.0 Bye"]
            quit_sent = time.monotonic()
        # Stopping follows the last session's end, not the end of the grace period.
        assert server.wait(DRAIN_GRACE)
        assert time.monotonic() - quit_sent < DRAIN_GRACE / 2
    finally:
        server.stop()
    assert server.stats.messages == 1 and 1 <= server.stats.sessions <= 1 + probes
