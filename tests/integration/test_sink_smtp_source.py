"""Postfix's smtp-source against ``loadkit sink``: counts and bytes exactly.

smtp-source's message (src/smtpstone/smtp-source.c) is four headers, a
blank line and the ``-l`` payload followed by CRLF:

    From: <FROM>
    To: <TO>
    Date: Thu, 26 Nov 2026 00:24:15 +0000 (UTC)      (37 characters with TZ=UTC)
    Message-Id: <PID.FD.COUNT@HOSTNAME>              (each number as %04x)

COUNT is the number of messages still to start, read when the message is
sent: with several sessions it can already be negative for the last few
("ffffffff", 4 bytes longer), so only ``-o`` (no headers, no HELO: payload
and CRLF alone) or a single session gives byte counts known in advance.

Without ``-d`` every message has its own connection; with ``-d`` each of the
``-s`` sessions connects once and sends its share.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from tests.integration.test_sink_cli import sink_process

pytestmark = pytest.mark.peer("smtp-source")

SENDER, RECIPIENT = "sender@example.com", "rcpt@example.com"
MAIL_DATE_LENGTH = 37  # "Ddd, dd Mmm YYYY HH:MM:SS +0000 (UTC)"
MESSAGES, SESSIONS, LENGTH = 500, 20, 5120


def smtp_source_message_bytes(pid: int, length: int) -> int:
    """One message with headers, its Message-Id COUNT not (yet) negative."""
    message_id = f"Message-Id: <{pid:04x}.0000.0000@{socket.gethostname()}>\r\n"
    headers = f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nDate: {'x' * MAIL_DATE_LENGTH}\r\n{message_id}\r\n"
    return len(headers) + length + 2


def run_smtp_source(path: str, target: str, *options: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [path, "-l", str(LENGTH), "-f", SENDER, "-t", RECIPIENT, *options, target],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TZ": "UTC"},
    )
    return process


def run_to_sink(smtp_source: str, tmp_path, options: list[str], lmtp: bool = False) -> tuple[dict, int]:
    """smtp-source OPTIONS against a fresh sink; (the sink's stats, smtp-source's pid)."""
    listen = ["-L"] if lmtp else []
    with sink_process(*listen, "127.0.0.1:0", stats_path=str(tmp_path / "stats.json")) as sink:
        source = run_smtp_source(smtp_source, f"127.0.0.1:{sink.port}", *options, *(["-L"] if lmtp else []))
        try:
            _, err = source.communicate(timeout=60)
        finally:
            source.kill()
        assert source.returncode == 0, err
        return sink.terminate(), source.pid


@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
@pytest.mark.parametrize("reuse", [False, True], ids=["new-connection", "reuse-d"])
def test_smtp_source_counts_exactly(peer, tmp_path, lmtp, reuse):
    options = ["-s", str(SESSIONS), "-m", str(MESSAGES), "-r", "3"] + (["-d"] if reuse else [])
    stats, pid = run_to_sink(peer("smtp-source"), tmp_path, options, lmtp)
    assert stats["messages"] == MESSAGES
    assert stats["recipients"] == 3 * MESSAGES
    assert stats["sessions"] == (SESSIONS if reuse else MESSAGES)
    late = stats["bytes"] - MESSAGES * smtp_source_message_bytes(pid, LENGTH)
    assert late % 4 == 0 and 0 <= late // 4 <= SESSIONS  # see the module docstring


@pytest.mark.parametrize("reuse", [False, True], ids=["new-connection", "reuse-d"])
def test_smtp_source_payload_bytes_exactly(peer, tmp_path, reuse):
    options = ["-o", "-s", str(SESSIONS), "-m", str(MESSAGES), "-r", "3"] + (["-d"] if reuse else [])
    stats, _ = run_to_sink(peer("smtp-source"), tmp_path, options)
    assert (stats["messages"], stats["recipients"]) == (MESSAGES, 3 * MESSAGES)
    assert stats["sessions"] == (SESSIONS if reuse else MESSAGES)
    assert stats["bytes"] == MESSAGES * (LENGTH + 2)


def test_smtp_source_lmtp_single_session_bytes_exactly(peer, tmp_path):
    options = ["-s", "1", "-m", "50", "-r", "3", "-d"]
    stats, pid = run_to_sink(peer("smtp-source"), tmp_path, options, lmtp=True)
    assert (stats["sessions"], stats["messages"], stats["recipients"]) == (1, 50, 150)
    assert stats["bytes"] == 50 * smtp_source_message_bytes(pid, LENGTH)


def test_smtp_source_over_a_unix_socket(peer, tmp_path):
    smtp_source = peer("smtp-source")
    path = str(tmp_path / "sink.sock")
    with sink_process(f"unix:{path}", stats_path=str(tmp_path / "stats.json")) as sink:
        source = run_smtp_source(smtp_source, f"unix:{path}", "-o", "-d", "-s", str(SESSIONS), "-m", str(MESSAGES))
        try:
            _, err = source.communicate(timeout=60)
        finally:
            source.kill()
        assert source.returncode == 0, err
        stats = sink.terminate()
    assert (stats["sessions"], stats["messages"], stats["recipients"]) == (SESSIONS, MESSAGES, MESSAGES)
    assert stats["bytes"] == MESSAGES * (LENGTH + 2)


def test_sink_stops_after_max_messages_and_lets_smtp_source_quit(peer, tmp_path):
    smtp_source = peer("smtp-source")
    with sink_process("-M", str(MESSAGES), "127.0.0.1:0", stats_path=str(tmp_path / "stats.json")) as sink:
        source = run_smtp_source(smtp_source, f"127.0.0.1:{sink.port}", "-d", "-s", str(SESSIONS), "-m", str(MESSAGES))
        try:
            _, err = source.communicate(timeout=60)
        finally:
            source.kill()
        assert source.returncode == 0, err  # its QUITs were answered
        assert sink.process.wait(timeout=10) == 0
        stats = sink.terminate(signal.SIGTERM)
    assert (stats["sessions"], stats["messages"]) == (SESSIONS, MESSAGES)
