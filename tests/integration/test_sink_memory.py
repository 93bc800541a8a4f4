"""``loadkit sink`` memory under messages that never end, sent by smtplib: bounded as ``--help`` says.

Without ``--store`` a session holds a few bytes of its message whatever its
size; with it, one session holds at most ``--max-buffer`` and all of them
``--max-buffer-total``, and what they held goes back to the system when
they let go. RSS is read from /proc for the sink's process.

RSS is read once the sink has done what it was given, seen from the kernel
(`settle`), not after a pause: on a busy machine the sink can wait longer
for a core than any pause, and a pause that saw no change proves nothing.
"""

from __future__ import annotations

import json
import re
import signal
import smtplib
import sys
import time
from pathlib import Path

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


TCP_LISTEN, TCP_CLOSE_WAIT = "0A", "08"
SETTLE_WITHIN = 60  # seconds: only a guard, the wait ends when the sink is done


def pending(port: int) -> tuple[int, int]:
    """(bytes in flight to or from the sink, sessions a client closed that the sink still holds),
    from the kernel's table of loopback TCP sockets (/proc/net/tcp)."""
    in_flight = unclosed = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for row in table:
            fields = row.split()
            local, remote, state = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16), fields[3]
            if state == TCP_LISTEN or port not in (local, remote):
                continue
            tx_queue, rx_queue = (int(n, 16) for n in fields[4].split(":"))
            in_flight += tx_queue + rx_queue
            unclosed += local == port and state == TCP_CLOSE_WAIT
    return in_flight, unclosed


def asleep(pid: int) -> bool:
    """Every thread of the process waits (none running or ready to run)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # a thread that just ended
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "R":
            return False
    return True


def settle(pid: int, port: int) -> float:
    """RSS once the sink has done what it was given: every byte sent to it read (and each reply read
    by its client), every session its client closed closed, all its threads asleep, and RSS the same
    on two such looks in a row."""
    deadline = time.monotonic() + SETTLE_WITHIN
    last = None
    while time.monotonic() < deadline:
        if pending(port) == (0, 0) and asleep(pid):
            now = rss_mib(pid)
            if last is not None and abs(now - last) < 0.5:
                return now
            last = now
        else:
            last = None
        time.sleep(0.1)
    raise AssertionError(f"the sink was still busy {SETTLE_WITHIN}s later: {pending(port)} (bytes in flight, "
                         f"sessions unclosed), RSS {rss_mib(pid):.1f} MiB")


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
        before = settle(process.pid, port)
        client = open_data(port)
        for _ in range(50):
            client.send(PIECE)
        grown = settle(process.pid, port) - before
        client.close()
    assert grown < 8, f"RSS grew {grown:.1f} MiB for an unfinished 50 MiB message"
    assert json.loads(stats_path.read_text())["messages"] == 0


def test_with_the_store_one_session_holds_at_most_max_buffer(tmp_path):
    process, port, stats_path = run_sink(tmp_path, "--size", "0", "--store", str(tmp_path / "mail"),
                                         "--max-buffer", str(8 * MIB))
    with watching([process], timeout=20):
        before = settle(process.pid, port)
        client = open_data(port)
        peak = before
        for _ in range(50):
            client.send(PIECE)
            peak = max(peak, rss_mib(process.pid))
        peak = max(peak, settle(process.pid, port))
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
        before = settle(process.pid, port)
        clients = [open_data(port) for _ in range(200)]
        peak = before
        for client in clients:
            client.send(PIECE)  # 1 MiB each: 200 MiB asked for, 64 MiB allowed
            peak = max(peak, rss_mib(process.pid))
        peak = max(peak, settle(process.pid, port))
        for client in clients:
            client.send(b".\r\n")
        codes = [client.getreply()[0] for client in clients]
        for client in clients:
            client.close()
        after = settle(process.pid, port)
    refused = codes.count(451)
    assert codes.count(250) + refused == 200 and 100 <= refused < 200, codes
    # 64 MiB held, plus the heap's scattered free chunks between them while sessions hold on
    assert peak - before < 64 + 48, f"RSS grew {peak - before:.1f} MiB with --max-buffer-total 64 MiB"
    assert after - before < 16, f"RSS stayed {after - before:.1f} MiB above the start once the sessions ended"
    stats = json.loads(stats_path.read_text())
    assert stats["messages"] == stats["store"]["stored"] == codes.count(250)
    assert stats["store"]["buffers_full"] == refused == stats["replies"]["451"]
