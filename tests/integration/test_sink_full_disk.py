"""``loadkit sink --stats-json`` on a full disk (a 64 KiB tmpfs): the counters are never lost silently.

The file is written whole or not at all: a previous one is kept, no
temporary file is left, and the sink says so in one line, with the counters
in it, and exits non-zero.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys

import pytest

from tests.conftest import require_root
from tests.integration.peers import WatchedProcess, watching

LISTENING = "loadkit sink: listening on "


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs, mounted for the test and unmounted after it."""
    require_root("mounting a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True, timeout=30)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False, timeout=30)


def fill(disk) -> None:
    """Write until the disk refuses one more byte."""
    descriptor = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(1024):  # 4 MiB at most: far more than the disk holds
            os.write(descriptor, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(descriptor)
    descriptor = os.open(disk / "probe", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError):
            os.write(descriptor, b"\0")
    finally:
        os.close(descriptor)
        os.unlink(disk / "probe")


def run_sink_then_stop(stats_path, before_stop=lambda: None) -> WatchedProcess:
    """A ``loadkit sink`` that gets one message, then SIGTERM; it must exit 2 without a traceback."""
    command = [sys.executable, "-m", "loadkit", "sink", "--stats-json", str(stats_path), "127.0.0.1:0"]
    process = WatchedProcess("loadkit sink", command, expected_status=2, first_line=True)
    with watching([process], timeout=20):
        assert process.first_line.startswith(LISTENING), process.stderr_text()
        port = int(process.first_line.rsplit(":", 1)[1])
        before_stop()
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("s@example.com", ["r@example.com"], b"Subject: x\r\n\r\nbody\r\n")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    return process


def test_a_full_disk_loses_no_counters_and_leaves_no_file(small_disk):
    stats_path = small_disk / "stats.json"
    process = run_sink_then_stop(stats_path, before_stop=lambda: fill(small_disk))
    error = process.stderr_text()
    assert error.count("\n") == 1, error
    assert "cannot write" in error and "No space left on device" in error and "no file written" in error
    assert "sessions 1 messages 1 recipients 1 bytes 20" in error  # the counters, in the line itself
    assert sorted(os.listdir(small_disk)) == ["filler"]  # no empty stats.json, no stats.json.tmpPID


def test_a_full_disk_keeps_the_previous_stats_file(small_disk):
    stats_path = small_disk / "stats.json"
    previous = json.dumps({"messages": 7}) + "\n"
    stats_path.write_text(previous)
    process = run_sink_then_stop(stats_path, before_stop=lambda: fill(small_disk))
    error = process.stderr_text()
    assert error.count("\n") == 1 and "the previous file is left as it was" in error, error
    assert stats_path.read_text() == previous
    assert sorted(os.listdir(small_disk)) == ["filler", "stats.json"]


def test_the_start_check_leaves_no_empty_file(tmp_path):
    stats_path = tmp_path / "stats.json"
    command = [sys.executable, "-m", "loadkit", "sink", "--stats-json", str(stats_path), "127.0.0.1:0"]
    process = WatchedProcess("loadkit sink", command, stop_signal=signal.SIGTERM, first_line=True)
    with watching([process], timeout=20):
        assert process.first_line.startswith(LISTENING), process.stderr_text()
        assert not stats_path.exists()  # checked writable, and nothing left behind until there are counters
    assert json.loads(stats_path.read_text())["sessions"] == 0
