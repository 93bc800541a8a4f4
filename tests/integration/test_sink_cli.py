"""``loadkit sink`` as a command: listening line, stats file, signals, bad input."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time

import pytest

from tests.integration.peers import WatchedProcess, watching

LISTENING = "loadkit sink: listening on "


class SinkProcess:
    """A ``loadkit sink`` child process and what it said it listens on."""

    def __init__(self, process: WatchedProcess, url: str, stats_path: str | None):
        self.process = process
        self.url = url
        self.stats_path = stats_path
        self.port = int(url.rsplit(":", 1)[1]) if "+unix" not in url else None

    def terminate(self, signum=signal.SIGTERM) -> dict | None:
        """Signal the sink, wait for its exit (code 0 expected), return its stats file."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        assert self.process.wait(timeout=10) == 0, self.process.stderr_text()
        if self.stats_path is None:
            return None
        with open(self.stats_path) as stream:
            return json.load(stream)


@contextlib.contextmanager
def sink_process(*arguments: str, stats_path: str | None = None):
    """Run ``loadkit sink ARGUMENTS`` (port 0 by default), yield once it listens; it must end
    with exit 0 and no traceback (stopped with SIGTERM after the block if still running)."""
    command = [sys.executable, "-m", "loadkit", "sink"]
    if stats_path:
        command += ["--stats-json", stats_path]
    command += list(arguments) or ["127.0.0.1:0"]
    process = WatchedProcess("loadkit sink", command, stop_signal=signal.SIGTERM, first_line=True)
    with watching([process], timeout=10):
        line = process.first_line
        if not line.startswith(LISTENING):
            process.stop_now()
            raise AssertionError(f"loadkit sink did not start: {line!r} {process.stderr_text()}")
        yield SinkProcess(process, line[len(LISTENING):].strip(), stats_path)


def send_one(port: int, recipients=("a@example.com",)) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("s@example.com", list(recipients), b"Subject: x\r\n\r\nbody\r\n")


def test_port_zero_prints_the_bound_port_and_sigterm_writes_stats(tmp_path):
    stats_path = str(tmp_path / "stats.json")
    with sink_process(stats_path=stats_path) as sink:
        assert sink.url.startswith("smtp://127.0.0.1:") and sink.port > 0
        send_one(sink.port, recipients=("a@example.com", "b@example.com"))
        send_one(sink.port)
        stats = sink.terminate(signal.SIGTERM)
    assert {k: stats[k] for k in ("sessions", "messages", "recipients", "bytes")} == {
        "sessions": 2, "messages": 2, "recipients": 3, "bytes": 2 * len(b"Subject: x\r\n\r\nbody\r\n"),
    }
    assert stats["address"] == sink.url and stats["duration"] > 0


def test_sigint_also_ends_cleanly_with_stats(tmp_path):
    stats_path = str(tmp_path / "stats.json")
    with sink_process("-L", "-h", "lmtp.test", "127.0.0.1:0", stats_path=stats_path) as sink:
        assert sink.url.startswith("lmtp://127.0.0.1:")
        with socket.create_connection(("127.0.0.1", sink.port), timeout=5) as sock:
            assert sock.recv(100) == b"220 lmtp.test LMTP loadkit\r\n"
        stats = sink.terminate(signal.SIGINT)
    assert stats["protocol"] == "lmtp" and stats["sessions"] == 1 and stats["messages"] == 0


def test_max_messages_exits_by_itself_with_stats(tmp_path):
    stats_path = str(tmp_path / "stats.json")
    with sink_process("-M", "3", "127.0.0.1:0", stats_path=stats_path) as sink:
        for _ in range(3):
            send_one(sink.port)
        assert sink.process.wait(timeout=10) == 0
        stats = sink.terminate()
    assert (stats["messages"], stats["sessions"]) == (3, 3)


def test_counters_line_on_stderr(tmp_path):
    with sink_process("-c", "127.0.0.1:0") as sink:
        send_one(sink.port)
        time.sleep(0.3)
        sink.process.send_signal(signal.SIGTERM)
        assert sink.process.wait(timeout=10) == 0
        err = sink.process.stderr_text()
    assert err.rstrip().endswith("sessions 1 messages 1 recipients 1 bytes 20")


def test_unix_socket_listening(tmp_path):
    path = str(tmp_path / "sink.sock")
    with sink_process(f"unix:{path}") as sink:
        assert sink.url == f"smtp+unix://{path}"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            assert sock.recv(100).startswith(b"220 ")
        sink.terminate()
    assert not os.path.exists(path)


def run_bad(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadkit", "sink", *arguments],
        capture_output=True, text=True, timeout=30,
    )


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["127.0.0.1:99999"], "out of range"),
        (["127.0.0.1:port"], "not a number"),
        (["-M", "0", "127.0.0.1:0"], "-M 0: must be at least 1"),
        (["-M", "many", "127.0.0.1:0"], "invalid int value"),
        (["-t", "0", "127.0.0.1:0"], "-t 0.0: must be more than 0 seconds"),
        (["--stats-json", "/nonexistent-dir/stats.json", "127.0.0.1:0"], "cannot write --stats-json"),
        (["192.0.2.1:0"], "cannot listen on 192.0.2.1:0"),
        (["--reject", "rcpt:650", "127.0.0.1:0"], "reject code 650 is not a 4xx or 5xx code"),
        (["--delay", "data:soon", "127.0.0.1:0"], "bad duration 'soon'"),
        (["-f", "mail,bogus", "127.0.0.1:0"], "unknown command 'bogus'"),
        (["--drip", "ehlo", "127.0.0.1:0"], "bad --drip 'ehlo'"),
        (["-e", "-L", "127.0.0.1:0"], "-e cannot go with -L"),
        (["--greylist-delay", "5", "127.0.0.1:0"], "--greylist-delay needs --greylist"),
        (["--store-max", "3", "127.0.0.1:0"], "--store-max needs --store"),
        (["--size=-1", "127.0.0.1:0"], "--size -1: must be 0 (no limit) or more"),
        (["--store-max", "0", "--store", "mail", "127.0.0.1:0"], "--store-max 0: must be at least 1"),
        (["--max-buffer", "0", "127.0.0.1:0"], "--max-buffer and --max-buffer-total must be at least 1 byte"),
        (["--max-buffer", "2048", "--max-buffer-total", "1024", "127.0.0.1:0"],
         "--max-buffer 2048 is more than --max-buffer-total 1024"),
        (["--max-buffer", "lots", "127.0.0.1:0"], "invalid int value"),
        (["127.0.0.1:0", "0"], "backlog 0: must be at least 1"),
        (["--tls-key", "key.pem", "127.0.0.1:0"], "--tls-key needs --tls-cert"),
        (["--no-trace", "--trace-log", "traces.log", "127.0.0.1:0"], "--trace-log needs the traces read"),
        (["--trace-log", "/nonexistent-dir/traces.log", "127.0.0.1:0"], "cannot write --trace-log"),
        (["--auth-users", "/nonexistent-dir/users", "127.0.0.1:0"], "cannot read --auth-users"),
        (["--auth-mechanisms", "PLAIN,GSSAPI", "127.0.0.1:0"], "unknown AUTH mechanism GSSAPI"),
        (["--tls-cert", "/nonexistent-dir/cert.pem", "127.0.0.1:0"], "cannot use --tls-cert"),
        (["--store", "/proc/no-such-dir/mail", "127.0.0.1:0"], "cannot use --store"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(arguments, message):
    result = run_bad(*arguments)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_address_in_use_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_bad(f"127.0.0.1:{taken.getsockname()[1]}")
    assert result.returncode == 2
    assert "Address already in use" in result.stderr and result.stderr.count("\n") == 1


def ehlo(port: int) -> tuple[bytes, bytes]:
    """(banner, reply to EHLO) from a sink on `port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        banner = sock.recv(1000)
        sock.sendall(b"EHLO client\r\n")
        reply = b""
        while not reply.endswith(b"\r\n") or reply.split(b"\r\n")[-2][3:4] != b" ":
            reply += sock.recv(1000)
        return banner, reply


def test_every_capability_can_be_turned_off():
    switches = ["-p", "-8", "-E", "-a", "-N", "--no-size", "--no-starttls", "--no-smtputf8", "--no-chunking"]
    with sink_process(*switches, "-h", "bare.test", "--greeting", "hello", "127.0.0.1:0") as sink:
        assert ehlo(sink.port) == (b"220 bare.test hello\r\n", b"250 bare.test\r\n")
    with sink_process("-e", "127.0.0.1:0") as sink:
        # no ESMTP: no ENHANCEDSTATUSCODES either
        assert ehlo(sink.port) == (b"220 loadkit-sink loadkit\r\n", b"500 Error: command not recognized\r\n")
    with sink_process("127.0.0.1:0") as sink:
        _, reply = ehlo(sink.port)
    assert reply.split(b"\r\n")[1:-1] == [
        b"250-PIPELINING", b"250-SIZE 10240000", b"250-STARTTLS", b"250-AUTH PLAIN LOGIN",
        b"250-ENHANCEDSTATUSCODES", b"250-8BITMIME", b"250-DSN", b"250-SMTPUTF8", b"250 CHUNKING",
    ]


def test_smtps_endpoint_and_the_stats_file_fields(tmp_path):
    import ssl

    stats_path = str(tmp_path / "stats.json")
    with sink_process("--size", "5000", "smtps:127.0.0.1:0", stats_path=stats_path) as sink:
        assert sink.url.startswith("smtps://127.0.0.1:")
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with smtplib.SMTP_SSL("127.0.0.1", sink.port, timeout=10, context=context) as client:
            assert client.ehlo()[0] == 250 and client.esmtp_features["size"] == "5000"
            client.sendmail("s@example.com", ["a@example.com"], b"Subject: x\r\n\r\nbody\r\n")
        stats = sink.terminate()
    assert stats["messages"] == 1
    assert stats["replies"] == {"220": 1, "221": 1, "250": 4, "354": 1}
    assert stats["tls"] == {"sessions": 1, "failures": 0} and stats["faults"] == {}
    assert stats["store"] == {"stored": 0, "skipped": 0, "failed": 0, "over_buffer": 0, "buffers_full": 0}
    assert stats["trace"]["messages"] == 0 and stats["auth"] == {"ok": 0, "failed": 0}
