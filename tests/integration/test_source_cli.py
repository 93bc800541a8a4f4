"""`loadkit source` as smtp-source users run it: flags, failures, bad input."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import refused_port
from tests.integration.peers import WatchedProcess, loadkit_sink, postfix_sink

RUNNING_COUNT = re.compile(r"\r(\d+)")  # -c: the running count of delivered messages


def source(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadkit", "source", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def rejecting_smtp_sink():
    """Postfix's smtp-sink rejecting every RCPT with a hard error (its -f option)."""
    with postfix_sink(options=("-f", "RCPT")) as sink:
        yield sink.url


@pytest.mark.peer("smtp-sink")
def test_aborts_on_the_first_failure(rejecting_smtp_sink):
    result = source("-s", "2", "-m", "50", rejecting_smtp_sink)
    assert result.returncode == 1
    assert "at RCPT" in result.stdout
    sent = int(re.search(r"(\d+) messages", result.stdout).group(1))
    assert 1 <= sent < 50
    assert result.stderr.strip().count("\n") == 0 and "error:" in result.stderr


@pytest.mark.peer("smtp-sink")
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


def wait_for_running_count(process: WatchedProcess, least: int, timeout: float = 60.0) -> None:
    """Until `loadkit source -c` shows at least `least` delivered messages: the load is under way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = RUNNING_COUNT.findall(process.stdout_text())
        if counts and int(counts[-1]) >= least:
            return
        assert process.poll() is None, f"loadkit source ended early: {process.stdout_text()} {process.stderr_text()}"
        time.sleep(0.05)
    process.stop_now()
    raise AssertionError(f"no running count of {least} in {timeout}s: {process.stdout_text()!r}")


def summary_counts(stdout: str) -> tuple[int, int, int]:
    found = re.search(r"loadkit source: (\d+) messages \((\d+) delivered, (\d+) failed\)", stdout)
    assert found, stdout
    return tuple(int(n) for n in found.groups())


def test_ctrl_c_prints_what_was_measured_and_exits_130(tmp_path):
    """SIGINT mid-run, against loadkit's sink: the summary (marked interrupted) counts exactly
    what the sink took, one line on stderr, no traceback, exit 130, well before -m is reached."""
    with loadkit_sink(tmp_path) as (url, read_stats):
        url = url.removeprefix("smtp://")
        process = WatchedProcess("loadkit source", [sys.executable, "-m", "loadkit", "source", "-c", "-s", "4",
                                                    "-m", "10000000", "-w", "0.01", url], expected_status=130)
        wait_for_running_count(process, 50)
        process.send_signal(signal.SIGINT)
        process.finish(timeout=60)
        stats = read_stats()
    out, err = process.stdout_text(), process.stderr_text()
    assert "(interrupted)" in out, out
    sent, delivered, failed = summary_counts(out)
    assert 50 <= sent < 10_000_000 and failed == 0 and delivered == sent == stats["messages"], (out, stats)
    assert "latency ms: p50" in out
    assert err.strip().splitlines() == [f"loadkit source: interrupted after {sent} of 10000000 messages"], err


def test_ctrl_c_twice_stops_at_once(tmp_path):
    """A second SIGINT does not wait for a server that is slow to answer (the sink delays DATA's end by 20 s)."""
    with loadkit_sink(tmp_path, "--delay", "data:20s") as (url, _read_stats):
        url = url.removeprefix("smtp://")
        process = WatchedProcess("loadkit source", [sys.executable, "-m", "loadkit", "source", "-s", "2",
                                                    "-m", "100", url], expected_status=130)
        time.sleep(4)  # connected and waiting on the slow reply (or still starting: either is stopped)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        process.finish(timeout=15)
        assert time.monotonic() - started < 15
    assert "Traceback" not in process.stderr_text()


def test_no_locust_noise_about_users_without_proper_args(tmp_path):
    """Sessions that end themselves once -m is spent are forgotten before Locust stops the rest:
    its "user that didn't have proper args" lines used to end the output, one run in two."""
    with loadkit_sink(tmp_path) as (url, read_stats):
        url = url.removeprefix("smtp://")
        for _ in range(5):
            result = source("-s", "20", "-m", "300", url, timeout=60)
            assert result.returncode == 0, result.stdout + result.stderr
            assert result.stderr == "", result.stderr
            assert summary_counts(result.stdout) == (300, 300, 0)
        assert read_stats()["messages"] == 1500
