"""``loadkit sink`` memory under messages that never end, sent by smtplib: bounded as ``--help`` says.

Without ``--store`` a session holds a few bytes of its message whatever its
size; with it, one session holds at most ``--max-buffer`` and all of them
``--max-buffer-total``, and what they held goes back to the system when
they let go. RSS is read from /proc for the sink's process.
"""

from __future__ import annotations

import json
import re
import signal
import smtplib
import sys
import time

from tests.integration.peers import WatchedProcess, watching

LISTENING = "loadkit sink: listening on "
MIB = 1 << 20
PIECE = (b"x" * 998 + b"\r\n") * 1024  # 1 MiB of message lines


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as stream:
        return int(re.search(r"VmRSS:\s+(\d+) kB", stream.read()).group(1)) / 1024


def open_data(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo("me")
    assert client.mail("a@example.com")[0] == 250
    assert client.rcpt("b@example.com")[0] == 250
    assert client.docmd("DATA")[0] == 354
    return client


def settle(pid: int) -> float:
    """RSS once the sink has read what was sent (it stops changing)."""
    last = rss_mib(pid)
    for _ in range(50):
        time.sleep(0.1)
        now = rss_mib(pid)
        if abs(now - last) < 0.5:
            return now
        last = now
    return last


def run_sink(tmp_path, *options):
    stats_path = tmp_path / "stats.json"
    command = [sys.executable, "-m", "loadkit", "sink", "-t", "60", "--stats-json", str(stats_path), *options,
               "127.0.0.1:0"]
    process = WatchedProcess("loadkit sink", command, stop_signal=signal.SIGTERM, first_line=True)
    assert process.first_line.startswith(LISTENING), process.stderr_text()
    return process, int(process.first_line.rsplit(":", 1)[1]), stats_path


def test_a_50_mib_message_that_never_ends_costs_no_memory_without_the_store(tmp_path):
    process, port, stats_path = run_sink(tmp_path, "--size", "0")
    with watching([process], timeout=20):
        before = settle(process.pid)
        client = open_data(port)
        for _ in range(50):
            client.send(PIECE)
        grown = settle(process.pid) - before
        client.close()
    assert grown < 8, f"RSS grew {grown:.1f} MiB for an unfinished 50 MiB message"
    assert json.loads(stats_path.read_text())["messages"] == 0


def test_with_the_store_one_session_holds_at_most_max_buffer(tmp_path):
    process, port, stats_path = run_sink(tmp_path, "--size", "0", "--store", str(tmp_path / "mail"),
                                         "--max-buffer", str(8 * MIB))
    with watching([process], timeout=20):
        before = settle(process.pid)
        client = open_data(port)
        peak = before
        for _ in range(50):
            client.send(PIECE)
            peak = max(peak, rss_mib(process.pid))
        peak = max(peak, settle(process.pid))
        client.send(b".\r\n")
        code, text = client.getreply()
        assert (code, text) == (552, b"5.3.4 Error: message too big for the sink's buffer (--max-buffer)")
        client.quit()
    assert peak - before < 8 + 16, f"RSS grew {peak - before:.1f} MiB with --max-buffer 8 MiB"
    stats = json.loads(stats_path.read_text())
    assert (stats["messages"], stats["store"]["stored"], stats["store"]["over_buffer"]) == (0, 0, 1)
    assert stats["replies"]["552"] == 1


def test_200_unfinished_sessions_hold_at_most_the_total_and_give_it_back(tmp_path):
    process, port, stats_path = run_sink(tmp_path, "--store", str(tmp_path / "mail"),
                                         "--max-buffer-total", str(64 * MIB))
    with watching([process], timeout=30):
        before = settle(process.pid)
        clients = [open_data(port) for _ in range(200)]
        peak = before
        for client in clients:
            client.send(PIECE)  # 1 MiB each: 200 MiB asked for, 64 MiB allowed
            peak = max(peak, rss_mib(process.pid))
        peak = max(peak, settle(process.pid))
        for client in clients:
            client.send(b".\r\n")
        codes = [client.getreply()[0] for client in clients]
        for client in clients:
            client.close()
        after = settle(process.pid)
    refused = codes.count(451)
    assert codes.count(250) + refused == 200 and 100 <= refused < 200, codes
    # 64 MiB held, plus the heap's scattered free chunks between them while sessions hold on
    assert peak - before < 64 + 48, f"RSS grew {peak - before:.1f} MiB with --max-buffer-total 64 MiB"
    assert after - before < 16, f"RSS stayed {after - before:.1f} MiB above the start once the sessions ended"
    stats = json.loads(stats_path.read_text())
    assert stats["messages"] == stats["store"]["stored"] == codes.count(250)
    assert stats["store"]["buffers_full"] == refused == stats["replies"]["451"]
