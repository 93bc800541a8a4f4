"""The sink server's own API around the sessions: its errors, its record, its greenlets, serve_forever."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import pytest

from loadkit.sink import SinkError, SinkServer
from tests.unit.test_sink_server import connect, ipv6_sink, read_replies


def listen_error(listen: str) -> str:
    with pytest.raises(SinkError) as caught:
        SinkServer(listen).start()
    return str(caught.value)


def test_listening_errors_name_the_address_as_it_was_given():
    with SinkServer("127.0.0.1:0") as server:
        port = server.address[1]
        assert listen_error(f"127.0.0.1:{port}") == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert listen_error("no-such-host.invalid:0").startswith(
        "cannot listen on no-such-host.invalid:0: cannot resolve 'no-such-host.invalid': "
    )
    assert "Errno" not in listen_error("no-such-host.invalid:0")


def test_an_ipv6_address_in_use_is_said_in_brackets():
    with ipv6_sink() as server:
        port = server.address[1]
        assert listen_error(f"[::1]:{port}") == f"cannot listen on [::1]:{port}: Address already in use"


def test_a_unix_socket_someone_listens_on_is_said_so():
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "sink.sock")
        with SinkServer(f"unix:{path}"):
            assert listen_error(f"unix:{path}") == (
                f"cannot listen on unix:{path}: Address already in use (another server listens there)"
            )


def test_a_trace_log_that_cannot_be_written_is_a_one_line_error(tmp_path):
    missing = tmp_path / "no-such-directory" / "trace.log"
    with pytest.raises(SinkError) as caught:
        SinkServer("127.0.0.1:0", trace_log=str(missing))
    assert str(caught.value) == f"cannot write --trace-log {missing}: No such file or directory"


def test_waiting_on_a_sink_that_was_never_started_is_an_error():
    with pytest.raises(SinkError) as caught:
        SinkServer("127.0.0.1:0").wait(0.01)
    assert str(caught.value) == "the sink is not started"


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
def test_the_stats_record_and_repr_say_where_and_what(protocol):
    server = SinkServer("127.0.0.1:0", lmtp=protocol == "lmtp")
    assert repr(server) == f"<SinkServer {protocol}://127.0.0.1:0 sessions 0 messages 0 recipients 0 bytes 0>"
    with server:
        record = server.stats_record()
        assert record["address"] == server.url and server.url.startswith(f"{protocol}://127.0.0.1:")
        assert record["protocol"] == protocol
        assert "dkim" not in record
        assert repr(server) == f"<SinkServer {server.url} sessions 0 messages 0 recipients 0 bytes 0>"


def test_session_greenlets_are_parked_and_reused():
    with SinkServer("127.0.0.1:0") as server:
        for _ in range(3):  # one after the other: one greenlet serves them all
            with connect(server) as sock:
                read_replies(sock, 1)
                sock.sendall(b"QUIT\r\n")
                assert read_replies(sock, 1) == [b"221 2.0.0 Bye"]
                assert sock.recv(10) == b""
            deadline = time.monotonic() + 5
            while not server._idle and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(server._idle) == 1
        assert len(server._session_greenlets) == 1
    assert server.stats.sessions == 3


def test_serve_forever_serves_in_the_calling_thread_and_returns_once_max_messages_is_reached():
    """As `loadkit sink` runs it: the calling thread's hub serves; a plain thread is the client here."""
    script = """
import socket, threading, time
from loadkit.sink import SinkServer
server = SinkServer("127.0.0.1:0", max_messages=1)

def client():
    while server.address is None:
        time.sleep(0.01)
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"HELO me\\r\\nMAIL FROM:<a@b>\\r\\nRCPT TO:<c@d>\\r\\nDATA\\r\\nx\\r\\n.\\r\\nQUIT\\r\\n")
        data = b""
        while chunk := sock.recv(1000):
            data += chunk
    print(data.count(b"\\r\\n"), data.endswith(b"221 2.0.0 Bye\\r\\n"))

talker = threading.Thread(target=client, daemon=True)
talker.start()
server.serve_forever()
talker.join(10)
print(server.in_thread, server.wait(0), server.stats.sessions, server.stats.messages)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "True", "False", "True", "1", "1"]


def test_the_trace_log_is_made_for_appending_readable_by_all(tmp_path):
    log = tmp_path / "traces.log"
    umask = os.umask(0o022)
    os.umask(umask)
    server = SinkServer("127.0.0.1:0", trace_log=str(log))
    try:
        assert log.exists() and log.stat().st_mode & 0o777 == 0o644 & ~umask
    finally:
        with server:  # started and stopped: stopping closes the log
            pass


def test_a_sink_starts_once():
    server = SinkServer("127.0.0.1:0")
    with server:
        with pytest.raises(SinkError) as caught:
            server.start()
        assert str(caught.value) == "a sink starts once: it is already started, or stopped"
    with pytest.raises(SinkError, match="^a sink starts once: it is already started, or stopped$"):
        server.start()
