"""The sink server's life: where it serves, listening, stopping, and a sweep that must never block the others."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time

import gevent
import gevent.socket
import pytest

from loadkit.sink import SinkError, SinkServer, SinkSettings
from loadkit.sink._server import RECV_SIZE, S421_TIMEOUT
from tests.unit.test_sink_server import fail_a_handshake, wait_for_tls_failures


def test_stop_in_the_callers_hub_has_closed_everything_when_it_returns():
    """A sink serving in this thread's hub (as next to Locust users) stops without a thread to wake."""
    server = SinkServer("127.0.0.1:0").start(in_thread=False)
    try:
        client = gevent.socket.create_connection(server.address, timeout=5)
        assert client.recv(100).startswith(b"220 ")
        server.stop()
        # No switch to the hub since stop() returned: what it closed, it closed itself.
        assert server.stats.stopped is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(server.address, timeout=5).close()
        assert client.recv(100) == b""  # the session is closed too
        client.close()
        assert server.wait(0)
    finally:
        server.stop()


def test_stop_from_a_loop_callback_stops_the_sink_soon_after():
    """A signal handler runs in the hub, which cannot block: stop() hands the shutdown to a greenlet."""
    server = SinkServer("127.0.0.1:0").start(in_thread=False)
    try:
        gevent.get_hub().loop.run_callback(server.stop)
        assert server.wait(5)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(server.address, timeout=5).close()
    finally:
        server.stop()


def test_stop_before_start_changes_nothing():
    server = SinkServer("127.0.0.1:0")
    server.stop()
    assert server.stats.stopped is None and server.address is None
    with server:  # it still starts, and serves
        with socket.create_connection(server.address, timeout=5) as client:
            assert client.recv(100).startswith(b"220 ")


def test_the_duration_ends_when_the_sink_stops():
    with SinkServer("127.0.0.1:0") as server:
        pass
    duration = server.stats.duration
    time.sleep(0.05)
    assert server.stats.duration == duration
    assert server.stats.as_dict()["duration"] == round(duration, 6)


def test_a_unix_socket_path_too_long_is_said_in_one_line(tmp_path):
    path = tmp_path / ("s" * 120 + ".sock")  # longer than sun_path (108 bytes)
    with pytest.raises(SinkError) as caught:
        SinkServer(f"unix:{path}").start()
    assert str(caught.value) == f"cannot listen on unix:{path}: AF_UNIX path too long"


PATCHED = """
import sys
from gevent import monkey
getattr(monkey, sys.argv[1])()
from loadkit.sink import SinkError, SinkServer, SinkSettings
from loadkit.sink._server import RECV_SIZE
server = SinkServer("127.0.0.1:0").start()
print(server.in_thread)
server.stop()
try:
    SinkServer("127.0.0.1:0").start(in_thread=True)
except SinkError as error:
    print(error)
"""


@pytest.mark.parametrize("patch", ["patch_socket", "patch_thread"])
def test_a_thread_of_its_own_unless_the_socket_or_threading_module_is_patched(patch):
    for asked in (None, True):
        before = set(threading.enumerate())
        with SinkServer("127.0.0.1:0").start(in_thread=asked) as server:
            assert server.in_thread
            started = [thread for thread in threading.enumerate() if thread not in before]
            # a daemon: a sink left running does not keep the process from exiting
            assert [(thread.name, thread.daemon) for thread in started] == [("loadkit-sink", True)]
    # Either module patched alone is enough to serve in the caller's hub, and to refuse a thread.
    result = subprocess.run([sys.executable, "-c", PATCHED, patch], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["False", "no thread of its own under gevent monkey-patching: start(in_thread=False)"]


def test_a_thread_that_fails_to_start_is_a_one_line_error(monkeypatch):
    server = SinkServer("127.0.0.1:0")

    def no_watcher_left():
        raise OSError("no watcher left")

    monkeypatch.setattr(server, "_start_workers", no_watcher_left)  # what the thread does first
    with pytest.raises(SinkError) as caught:
        server.start(in_thread=True)
    assert str(caught.value) == "the sink's thread failed to start: no watcher left"
    with pytest.raises(ConnectionRefusedError):  # nothing would ever accept there
        socket.create_connection(server.address, timeout=5).close()


def fill_its_buffer_until_timed_out(server, stuck, path) -> None:
    """A client that asks for about 1 MB of replies, reads none, and is timed out by the sink."""
    stuck.settimeout(5)
    stuck.connect(path)
    assert stuck.recv(100).startswith(b"220 ")
    stuck.sendall(b"EHLO c\r\n" * (RECV_SIZE // 8))
    deadline = time.monotonic() + 10
    while not server.stats.timeouts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats.timeouts == 1


def test_timing_out_a_client_that_does_not_read_holds_up_no_other_session(tmp_path):
    """The sweeper's 421 meets a full socket buffer: it must not wait for room, the whole sink would wait."""
    path = str(tmp_path / "sink.sock")
    with SinkServer(f"unix:{path}", timeout=0.3) as server:
        with socket.socket(socket.AF_UNIX) as stuck:
            fill_its_buffer_until_timed_out(server, stuck, path)
            with socket.socket(socket.AF_UNIX) as other:
                other.settimeout(5)
                other.connect(path)
                assert other.recv(100).startswith(b"220 ")
                other.sendall(b"QUIT\r\n")
                assert other.recv(100) == b"221 2.0.0 Bye\r\n"


def test_a_timed_out_client_that_does_not_read_is_closed_all_the_same(tmp_path):
    """No room for the 421 in its full buffer: the session is still shut down, so the client reads to an end."""
    path = str(tmp_path / "sink.sock")
    with SinkServer(f"unix:{path}", timeout=0.3) as server:
        with socket.socket(socket.AF_UNIX) as stuck:
            fill_its_buffer_until_timed_out(server, stuck, path)
            received = 0
            while chunk := stuck.recv(1 << 16):  # socket.timeout here: the session was left open
                received += len(chunk)
    assert received > 0 and server.stats.replies.get(S421_TIMEOUT, 0) == 0  # the 421 had no room


def test_settings_and_keywords_together_are_refused():
    with pytest.raises(TypeError) as caught:
        SinkServer(SinkSettings("127.0.0.1:0"), lmtp=True)
    assert str(caught.value) == "SinkServer takes SinkSettings or keywords, not both"


def test_every_session_greylists_by_its_own_clients_address():
    """Parked greenlets serve the next clients: each session is handed its new client's address."""
    with SinkServer("127.0.0.1:0", greylist=0.0) as server:
        for source, expected in (("127.0.0.1", b"450"), ("127.0.0.1", b"250"), ("127.0.0.2", b"450")):
            with socket.create_connection(server.address, timeout=5, source_address=(source, 0)) as client:
                assert client.recv(100).startswith(b"220 ")
                client.sendall(b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nQUIT\r\n")
                replies = b""
                while chunk := client.recv(1000):
                    replies += chunk
            assert replies.split(b"\r\n")[2][:3] == expected, source
    assert server.stats.sessions == 3


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_trace_log_is_closed_when_the_sink_stops(tmp_path):
    before = open_descriptors()
    server = SinkServer("127.0.0.1:0", trace_log=str(tmp_path / "traces.log")).start()
    server.stop()
    assert server.wait(0)
    assert open_descriptors() == before


def test_out_of_descriptors_the_sink_waits_and_then_accepts_the_waiting_client():
    """accept() failing with EMFILE ends neither the accept loop nor the listener."""
    with SinkServer("127.0.0.1:0") as server:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        hoard = []
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_descriptors() + 32, hard))
        try:
            while True:
                try:
                    hoard.append(os.open(os.devnull, os.O_RDONLY))
                except OSError:
                    break
            os.close(hoard.pop())  # one left: the client's, so the sink's accept() has none
            client = socket.socket()
            client.settimeout(5)
            client.connect(server.address)  # the kernel completes it; the sink cannot take it yet
            time.sleep(0.3)
            assert server.stats.sessions == 0
        finally:
            for fd in hoard:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with client:
            assert client.recv(100).startswith(b"220 ")
        assert server.stats.sessions == 1


def test_a_failed_handshake_ends_its_session_quietly(capfd):
    """No error out of the session: its greenlet is parked for the next client, who is served."""
    with SinkServer("127.0.0.1:0", implicit_tls=True) as server:
        for _ in range(2):
            fail_a_handshake(server)
        wait_for_tls_failures(server, 2)
    assert (server.stats.sessions, server.stats.tls_failures) == (2, 2)
    assert "Traceback" not in capfd.readouterr().err
