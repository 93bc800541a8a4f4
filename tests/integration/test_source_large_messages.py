"""`loadkit source -l` with large messages, against loadkit's sink: built once, memory bounded.

A 50 MB message used to be built 32 times up front (the pool): 1.7 GB and
15 s before the first byte, 6.5 GB for 200 MB. Peak memory is read from the
kernel (ru_maxrss of a wrapper's only child) and compared with the same run
at 5 KiB, so Python's and Locust's own footprint cancels out.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import socket_inodes
from tests.integration.peers import loadkit_sink

LARGE = 50_000_000
# Held at once: the pooled body, the stamped copy build() returns and the framed
# copy on its way to the socket. Anything near the old pool (32 copies) fails.
MOST_COPIES = 4

_WRAPPER = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr)\n"
)


def source_with_peak_memory(*args: str) -> tuple[int, int, str, str]:
    """(exit status, peak RSS in bytes, stdout, stderr) of `loadkit source ARGS`."""
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "loadkit", "source", *args],
        capture_output=True, text=True, timeout=180,
    )
    first, _, out = done.stdout.partition("\n")
    status, peak_kib = (int(n) for n in first.split())
    return status, peak_kib * 1024, out, done.stderr


@pytest.fixture(scope="module")
def baseline_rss(tmp_path_factory):
    with loadkit_sink(tmp_path_factory.mktemp("baseline")) as (url, _read_stats):
        status, peak, out, err = source_with_peak_memory("-m", "1", "-l", "5120", url.removeprefix("smtp://"))
    assert status == 0, out + err
    return peak


@pytest.mark.slow
def test_a_large_message_is_built_once_and_delivered(tmp_path, baseline_rss):
    with loadkit_sink(tmp_path, "--size", "0") as (url, read_stats):
        status, peak, out, err = source_with_peak_memory("-m", "2", "-l", str(LARGE), url.removeprefix("smtp://"))
        stats = read_stats()
    assert status == 0 and err == "", out + err
    assert "2 messages (2 delivered, 0 failed)" in out
    assert stats["messages"] == 2 and stats["bytes"] >= 2 * LARGE
    extra = peak - baseline_rss
    assert extra < MOST_COPIES * LARGE, f"{extra >> 20} MiB above a 5 KiB run for a {LARGE >> 20} MiB message"


@pytest.mark.slow
def test_over_the_servers_size_limit_is_labelled_so_without_building_copies(tmp_path, baseline_rss):
    with loadkit_sink(tmp_path, "--size", "10000000") as (url, read_stats):
        status, peak, out, err = source_with_peak_memory("-m", "1", "-l", str(LARGE), url.removeprefix("smtp://"))
        stats = read_stats()
    assert status == 1, out + err
    assert re.search(r"^\s+1\s+over the server's SIZE limit at MAIL$", out, re.MULTILINE), out
    assert "SIZE not supported" not in out + err
    assert err.strip().splitlines() == [
        f"loadkit source: error: a message of {stats_size(out, err)} bytes is over the server's SIZE limit of 10000000"
    ]
    assert stats["messages"] == 0
    extra = peak - baseline_rss
    assert extra < MOST_COPIES * LARGE, f"{extra >> 20} MiB above a 5 KiB run for a {LARGE >> 20} MiB message"


def stats_size(out: str, err: str) -> int:
    found = re.search(r"a message of (\d+) bytes", err)
    assert found, out + err
    size = int(found.group(1))
    assert LARGE < size < LARGE + 2048  # the body plus its headers
    return size



def _connected_to(pid: int, port: int) -> bool:
    """Whether process `pid` has a TCP connection established to `port`, read from the kernel's tables."""
    inodes = socket_inodes(pid)
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                return True  # 01: ESTABLISHED; field 2: the remote address; field 9: the socket's inode
    return False


def test_ctrl_c_while_a_large_message_is_built_ends_at_once(tmp_path):
    """SIGINT during the build of a 200 MB message (it used to be ignored for half a minute): exit 130
    within seconds, one line. On a machine fast enough to be sending already, a second SIGINT ends it."""
    with loadkit_sink(tmp_path, "--size", "0", "--delay", "data:30s") as (url, _read_stats):
        process = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "source", "-m", "1", "-l", str(4 * LARGE), url.removeprefix("smtp://")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            time.sleep(2)
            interrupted_at = time.monotonic()
            process.send_signal(signal.SIGINT)
            try:  # during the build: ends now; already sending: ends after a second Ctrl-C
                out, err = process.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                # Only a process connected to the sink is sending; one still exiting from the first Ctrl-C
                # (slow on a busy machine) would die of a second one instead of exiting 130.
                if _connected_to(process.pid, int(url.rsplit(":", 1)[1])):
                    process.send_signal(signal.SIGINT)
                out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert process.returncode == 130, out + err
    assert time.monotonic() - interrupted_at < 10
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "interrupted" in err, err
