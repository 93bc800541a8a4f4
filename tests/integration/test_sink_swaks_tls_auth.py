"""swaks against the sink's TLS, AUTH and greylisting: STARTTLS, implicit TLS, PLAIN/LOGIN, LMTP.

swaks marks what it sends inside TLS with ``~>`` and what it reads with
``<~`` (``->``/``<-`` in clear), and an unexpected reply with ``<**``.
Each test first asks swaks (``swaks --support``) whether it can do what the
test needs: Debian's swaks has TLS only with libnet-ssleay-perl.
"""

from __future__ import annotations

import subprocess

import pytest

from loadkit.sink import FaultPlan, SinkServer
from tests.conftest import swaks_with

pytestmark = pytest.mark.peer("swaks")

RECIPIENTS = ["a@example.com", "b@example.com"]


def swaks(path: str, address, *options: str) -> subprocess.CompletedProcess:
    host, port = address
    return subprocess.run(
        [path, "--server", f"{host}:{port}", "--from", "s@example.com", "--to", ",".join(RECIPIENTS),
         "--helo", "client.test", *options],
        capture_output=True, text=True, timeout=30,
    )


@pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipeline"])
@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_swaks_starttls(lmtp, pipeline):
    path = swaks_with("TLS")
    options = ["--tls"] + (["--protocol", "LMTP"] if lmtp else []) + (["--pipeline"] if pipeline else [])
    with SinkServer("127.0.0.1:0", lmtp=lmtp) as server:
        for _ in range(2):
            result = swaks(path, server.address, *options)
            assert result.returncode == 0, result.stdout + result.stderr
    transcript = result.stdout
    assert "=== TLS started with cipher" in transcript and "<** " not in transcript
    assert " ~> MAIL FROM:<s@example.com>" in transcript  # the transaction went inside TLS
    assert transcript.count("<~  250 2.0.0 Ok: queued") == (len(RECIPIENTS) if lmtp else 1)
    stats = server.stats
    assert (stats.sessions, stats.messages, stats.recipients) == (2, 2, 2 * len(RECIPIENTS))
    assert (stats.tls_sessions, stats.tls_failures) == (2, 0)


def test_swaks_implicit_tls():
    path = swaks_with("TLS")
    with SinkServer("127.0.0.1:0", implicit_tls=True) as server:
        result = swaks(path, server.address, "--tlsc")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "=== TLS started with cipher" in result.stdout and "<~  220 loadkit-sink ESMTP loadkit" in result.stdout
    assert (server.stats.messages, server.stats.tls_sessions) == (1, 1)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_auth_over_starttls_with_a_users_file(tmp_path, mechanism):
    users = tmp_path / "users"
    users.write_text("alice:correct horse\n")
    path = swaks_with("TLS", "Basic AUTH")
    # A non-loopback-only policy: AUTH is offered only once TLS is up.
    with SinkServer("127.0.0.1:0", auth_users=str(users), auth_plaintext=False) as server:
        good = swaks(path, server.address, "--tls", "--auth", mechanism,
                     "--auth-user", "alice", "--auth-password", "correct horse")
        bad = swaks(path, server.address, "--tls", "--auth", mechanism,
                    "--auth-user", "alice", "--auth-password", "wrong")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "<~  235 2.7.0 Authentication successful" in good.stdout
    assert "250-AUTH PLAIN LOGIN" not in good.stdout.split("STARTTLS")[0]  # not offered in clear
    assert bad.returncode != 0 and "<~* 535 5.7.8 Error: authentication failed" in bad.stdout
    stats = server.stats
    assert (stats.auth_ok, stats.auth_failed, stats.messages) == (1, 1, 1)


def test_swaks_auth_in_clear_on_loopback():
    path = swaks_with("Basic AUTH")
    with SinkServer("127.0.0.1:0") as server:
        result = swaks(path, server.address, "--auth", "LOGIN",
                       "--auth-user", "anyone", "--auth-password", "anything")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  235 2.7.0 Authentication successful" in result.stdout
    assert (server.stats.auth_ok, server.stats.tls_sessions, server.stats.messages) == (1, 0, 1)


def test_swaks_twice_against_greylisting(peer):
    path = peer("swaks")
    with SinkServer("127.0.0.1:0", greylist=0.0) as server:
        first = swaks(path, server.address)
        second = swaks(path, server.address)
    assert first.returncode != 0
    assert first.stdout.count("<** 450 4.7.1 Error: greylisted, try again later") == len(RECIPIENTS)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "<-  250 2.0.0 Ok: queued" in second.stdout
    stats = server.stats
    assert (stats.messages, stats.recipients) == (1, len(RECIPIENTS))
    assert stats.faults == {("greylist", "rcpt"): len(RECIPIENTS)}
    assert stats.reply_codes()["450"] == len(RECIPIENTS)


def test_swaks_sees_faults_with_their_codes(peer):
    plan = FaultPlan().reject("mail", 451)
    with SinkServer("127.0.0.1:0", faults=plan) as server:
        result = swaks(peer("swaks"), server.address)
    assert result.returncode != 0
    assert "<** 451 4.3.0 Error: MAIL rejected (loadkit sink --reject)" in result.stdout
    assert (server.stats.messages, server.stats.fault_count("reject", "mail")) == (0, 1)
