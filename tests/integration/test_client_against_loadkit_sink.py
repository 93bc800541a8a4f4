"""loadkit's client (through `loadkit source`) against the sink: faults on purpose, TLS, AUTH, extensions.

Every fault must show up as a failure with its reply code and phase, every
message be counted once on each side, and no session crash.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.integration.peers import loadkit_sink

SUMMARY = re.compile(r"(\d+) messages \((\d+) delivered, (\d+) failed\)")


def source(url: str, *args: str) -> subprocess.CompletedProcess:
    host_port = url.split("://", 1)[1]
    return subprocess.run(
        [sys.executable, "-m", "loadkit", "source", "-A", "-s", "4", *args, host_port],
        capture_output=True, text=True, timeout=120,
    )


def failures(stdout: str) -> dict[str, int]:
    return {key: int(count) for count, key in re.findall(r"^\s+(\d+)\s+(.+)$", stdout, re.MULTILINE)}


@pytest.mark.parametrize(
    "fault, key",
    [
        (["--reject", "rcpt:550"], "550 5.3.0 at RCPT"),
        (["--reject", "mail:451"], "451 4.3.0 at MAIL"),
        (["--reject", "data:554"], "554 5.3.0 at DATA"),
        (["--reject", ".:452"], "452 4.3.0 at END-OF-DATA"),
        (["-Q", "rcpt"], "421 4.3.0 at RCPT"),
    ],
)
def test_each_fault_is_a_failure_with_its_code_and_phase(tmp_path, fault, key):
    with loadkit_sink(tmp_path, *fault) as (url, read_stats):
        result = source(url, "-m", "40", "-d")
        stats = read_stats()
    sent, delivered, failed = (int(n) for n in SUMMARY.search(result.stdout).groups())
    assert (sent, delivered, failed) == (40, 0, 40), result.stdout + result.stderr
    found = failures(result.stdout)
    assert list(found) == [key], result.stdout
    assert stats["messages"] == 0
    assert "Traceback" not in result.stderr


def test_a_rate_of_rejects_splits_the_count_exactly(tmp_path):
    with loadkit_sink(tmp_path, "--reject", "rcpt:550:0.3", "--seed", "7") as (url, read_stats):
        result = source(url, "-m", "300", "-d")
        stats = read_stats()
    sent, delivered, failed = (int(n) for n in SUMMARY.search(result.stdout).groups())
    assert sent == 300 and delivered + failed == 300
    assert 0 < failed < 300
    assert stats["messages"] == delivered  # nothing counted twice on either side
    assert stats["faults"] == {"reject": {"rcpt": failed}}
    assert failures(result.stdout) == {"550 5.3.0 at RCPT": failed}


def test_a_silent_disconnect_is_a_transport_failure_and_the_next_message_reconnects(tmp_path):
    with loadkit_sink(tmp_path, "-q", "data") as (url, read_stats):
        result = source(url, "-m", "20", "-d")
        stats = read_stats()
    assert "20 messages (0 delivered, 20 failed)" in result.stdout
    assert failures(result.stdout) == {"connection closed at DATA": 20}
    assert stats["sessions"] == 20  # each failure cost its session, each retry opened a new one


def test_a_delay_shows_in_the_latency_and_nothing_is_lost(tmp_path):
    with loadkit_sink(tmp_path, "--delay", "data:30ms") as (url, read_stats):
        result = source(url, "-m", "40", "-d")
        stats = read_stats()
    assert "40 messages (40 delivered, 0 failed)" in result.stdout
    p50 = float(re.search(r"p50 ([\d.]+)", result.stdout).group(1))
    assert 30 <= p50 < 1000
    assert stats["messages"] == 40


def test_greylisting_is_a_soft_failure_then_delivery(tmp_path):
    with loadkit_sink(tmp_path, "--greylist") as (url, read_stats):
        first = source(url, "-m", "1", "-s", "1")
        second = source(url, "-m", "1", "-s", "1")
        stats = read_stats()
    assert failures(first.stdout) == {"450 4.7.1 at RCPT": 1}
    assert "1 messages (1 delivered, 0 failed)" in second.stdout
    assert stats["messages"] == 1


def summary(result) -> tuple[int, int, int]:
    return tuple(int(n) for n in SUMMARY.search(result.stdout).groups())


@pytest.mark.parametrize(
    "client_options",
    [
        ["--starttls", "--tls-no-verify", "--auth", "alice:wonder"],
        ["--starttls", "--tls-no-verify", "--auth", "alice:wonder", "--auth-mechanism", "LOGIN", "-d"],
        ["--starttls", "--tls-no-verify", "--auth", "alice:wonder", "--auth-mechanism", "CRAM-MD5"],
        ["--starttls", "--tls-no-verify", "--utf8", "--chunking", "-r", "2", "-d"],
    ],
    ids=["plain", "login-reused", "cram-md5", "utf8-bdat"],
)
def test_tls_auth_and_extensions_deliver_everything(tmp_path, client_options):
    users = tmp_path / "users"
    users.write_text("alice:wonder\n")
    sink_options = ["--auth-users", str(users), "--auth-mechanisms", "PLAIN,LOGIN,CRAM-MD5"]
    with loadkit_sink(tmp_path, *sink_options) as (url, read_stats):
        result = source(url, "-m", "30", *client_options)
        stats = read_stats()
    assert summary(result) == (30, 30, 0), result.stdout + result.stderr
    assert stats["messages"] == 30
    assert stats["tls"]["sessions"] >= 1 and stats["tls"]["failures"] == 0
    if "--auth" in client_options:
        assert stats["auth"]["failed"] == 0 and stats["auth"]["ok"] == stats["tls"]["sessions"]


def test_a_wrong_password_fails_at_auth_and_sends_nothing(tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:wonder\n")
    with loadkit_sink(tmp_path, "--auth-users", str(users)) as (url, read_stats):
        result = source(url, "-m", "5", "--starttls", "--tls-no-verify", "--auth", "alice:nope")
        stats = read_stats()
    assert summary(result) == (5, 0, 5)
    assert failures(result.stdout) == {"535 5.7.8 at AUTH": 5}
    assert stats["messages"] == 0


def test_a_self_signed_certificate_fails_verification_by_default(tmp_path):
    with loadkit_sink(tmp_path) as (url, read_stats):
        result = source(url, "-m", "3", "--starttls")
        stats = read_stats()
    assert failures(result.stdout) == {"connect failed at TLS": 3}
    assert stats["messages"] == 0
