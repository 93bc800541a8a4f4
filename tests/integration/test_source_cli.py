"""`loadkit source` as smtp-source users run it: flags, failures, bad input."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import refused_port
from tests.integration.peers import postfix_sink


def source(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadkit", "source", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def rejecting_smtp_sink():
    """Postfix's smtp-sink rejecting every RCPT with a hard error (its -f option)."""
    with postfix_sink(options=("-f", "RCPT")) as sink:
        yield sink.url


def test_aborts_on_the_first_failure(rejecting_smtp_sink):
    result = source("-s", "2", "-m", "50", rejecting_smtp_sink)
    assert result.returncode == 1
    assert "at RCPT" in result.stdout
    sent = int(re.search(r"(\d+) messages", result.stdout).group(1))
    assert 1 <= sent < 50
    assert result.stderr.strip().count("\n") == 0 and "error:" in result.stderr


def test_keeps_going_with_A_and_groups_failures_by_code_and_phase(rejecting_smtp_sink):
    result = source("-A", "-s", "3", "-m", "60", "-d", rejecting_smtp_sink)
    assert result.returncode == 1  # failures still make the exit non-zero
    assert "60 messages (0 delivered, 60 failed)" in result.stdout
    assert re.search(r"^\s+60\s+5\d\d 5\.\d+\.\d+ at RCPT$", result.stdout, re.MULTILINE), result.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["-m", "0", "127.0.0.1:25"], "-m 0"),
        (["-s", "0", "127.0.0.1:25"], "-s 0"),
        (["-l", "-5", "127.0.0.1:25"], "-l -5"),
        (["127.0.0.1:70000"], "out of range"),
        (["no-such-host.invalid:25"], "cannot resolve"),
        (["-m", "x", "127.0.0.1:25"], "invalid int value"),
        (["-w", "nan", "127.0.0.1:25"], "-w nan: not a finite number"),
        (["-w", "inf", "127.0.0.1:25"], "-w inf: not a finite number"),
        (["-R=-inf", "127.0.0.1:25"], "-R -inf: not a finite number"),
        (["-R", "nan", "127.0.0.1:25"], "-R nan: not a finite number"),
        (["-w", "-1", "127.0.0.1:25"], "-w -1.0: must be at least 0"),
        (["-w", "1e300", "127.0.0.1:25"], "-w 1e+300: must be at most 86400.0 seconds"),
        (["-s", "100000000", "127.0.0.1:25"], "see ulimit -n"),
        (["-l", "100000000000000", "127.0.0.1:25"], "a quarter of this machine's memory"),
        (["-r", "0", "127.0.0.1:25"], "-r 0: must be at least 1"),
        (["-r", "10000000000", "127.0.0.1:25"], "-r 10000000000: must be at most 1000000"),
        (["-t", "", "127.0.0.1:25"], "-t '': the recipient cannot be empty"),
        (["-f", "", "127.0.0.1:25"], "-f '': the sender cannot be empty"),
        (["-M", "", "127.0.0.1:25"], "-M '': the host name cannot be empty"),
        (["-t", "a@b\r\nRCPT TO:<c@d>", "127.0.0.1:25"], "cannot hold spaces or control characters"),
        (["-S", "hello\nBcc: c@d", "127.0.0.1:25"], "the subject is one line"),
        (["--auth", ":secret", "127.0.0.1:25"], "--auth takes user:password"),
        (["--auth-mechanism", "", "127.0.0.1:25"], "--auth-mechanism '': the mechanism cannot be empty"),
        ([""], "the target is empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, expected):
    result = source(*args, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""  # refused before any message: no summary


def test_a_refusing_host_is_a_clear_failure():
    with refused_port() as port:
        result = source("-m", "5", f"127.0.0.1:{port}", timeout=30)
    assert result.returncode == 1
    assert "connect failed at CONNECT" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Connection refused" in lines[0]
