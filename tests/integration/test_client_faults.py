"""The client against misbehaving servers: loadkit sink's fault modes and tests/integration/hostile_server.py.

Each case sends a few messages, one after the other, the way a user does:
each failure is one error with its code or transport error and its phase
(``421 4.3.2 at MAIL``, ``timeout at BANNER``), the next message is tried
all the same, successes + failures = attempts, every case ends within its
time bound, and the client's memory stays bounded. The sink's faults are
also driven through ``loadkit source -A`` (the real CLI), whose summary
must add up the same way.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time

import pytest

from loadkit.sink import FaultPlan, SinkServer
from loadkit.smtp import SmtpClient, SMTPError
from loadkit.urls import Target
from tests.integration.hostile_server import HostileServer

TIMEOUT = 1.0  # the client's connect and reply timeouts in these cases
MESSAGE = b"Subject: fault matrix\r\n\r\n" + b"body line\r\n" * 20
ATTEMPTS = 3


def attempt_all(target: Target, attempts: int = ATTEMPTS, message: bytes = MESSAGE, **options) -> list[str]:
    """Send `attempts` messages with one client; each outcome: "ok" or the failure's repr."""
    client = SmtpClient(target, timeout=TIMEOUT, connect_timeout=TIMEOUT, **options)
    outcomes = []
    try:
        for _ in range(attempts):
            try:
                client.send("a@example.com", ["b@example.com"], message)
                outcomes.append("ok")
            except SMTPError as error:
                outcomes.append(repr(error))
    finally:
        client.close()
    assert len(outcomes) == attempts  # successes + failures = attempts
    return outcomes


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the sink's fault modes, at every phase, 4xx and 5xx -----------------------------------

REJECTED = [
    ("connect", 421, "421 4.3.0 at BANNER"),
    ("connect", 554, "554 5.3.0 at BANNER"),
    ("ehlo", 454, "454 4.3.0 at HELO"),
    ("ehlo", 554, "554 5.3.0 at HELO"),  # falls back to HELO, which is accepted
    ("mail", 451, "451 4.3.0 at MAIL"),
    ("mail", 553, "553 5.3.0 at MAIL"),
    ("rcpt", 450, "450 4.3.0 at RCPT"),
    ("rcpt", 550, "550 5.3.0 at RCPT"),
    ("data", 451, "451 4.3.0 at DATA"),
    ("data", 554, "554 5.3.0 at DATA"),
    (".", 452, "452 4.3.0 at END-OF-DATA"),
    (".", 552, "552 5.3.0 at END-OF-DATA"),
]


@pytest.mark.parametrize("command, code, failure", REJECTED, ids=[f"{c}-{n}" for c, n, _ in REJECTED])
def test_a_rejection_at_every_phase_is_one_failure_and_the_next_message_goes_on(command, code, failure):
    plan = FaultPlan(seed=1).reject(command, code)
    with SinkServer("127.0.0.1:0", faults=plan) as sink:
        started = time.monotonic()
        outcomes = attempt_all(Target("smtp", *sink.address))
        elapsed = time.monotonic() - started
    if command == "ehlo" and code == 554:
        assert outcomes == ["ok"] * ATTEMPTS  # RFC 5321 4.1.1.1: HELO after a refused EHLO, one session
        assert (sink.stats.messages, sink.stats.fault_count("reject")) == (ATTEMPTS, 1)
    else:
        assert outcomes == [failure] * ATTEMPTS
        assert sink.stats.messages == 0
        assert sink.stats.fault_count("reject") == ATTEMPTS
    assert elapsed < 10


@pytest.mark.parametrize("option, command, failure", [
    ("disconnect", "mail", "connection closed at MAIL"),
    ("disconnect", "rcpt", "connection closed at RCPT"),
    ("disconnect", "data", "connection closed at DATA"),
    ("disconnect", ".", "connection closed at END-OF-DATA"),
    ("shutdown", "mail", "421 4.3.0 at MAIL"),
    ("shutdown", "rcpt", "421 4.3.0 at RCPT"),
    ("shutdown", ".", "421 4.3.0 at END-OF-DATA"),
])
def test_disconnects_are_one_failure_each_and_the_next_message_reconnects(option, command, failure):
    plan = getattr(FaultPlan(seed=1), option)(command)
    with SinkServer("127.0.0.1:0", faults=plan) as sink:
        outcomes = attempt_all(Target("smtp", *sink.address))
    assert outcomes == [failure] * ATTEMPTS
    assert sink.stats.sessions == ATTEMPTS  # a new connection for each message
    delivered = ATTEMPTS if command == "." and option == "disconnect" else 0
    assert sink.stats.messages in (0, delivered)


def test_a_dripped_reply_slower_than_the_timeout_is_a_timeout_at_its_phase():
    plan = FaultPlan().drip("mail", 8)  # "250 2.1.0 Ok\r\n" over about 2 s
    with SinkServer("127.0.0.1:0", faults=plan) as sink:
        started = time.monotonic()
        outcomes = attempt_all(Target("smtp", *sink.address), pipelining=False)
        elapsed = time.monotonic() - started
    assert outcomes == ["timeout at MAIL"] * ATTEMPTS
    assert elapsed < ATTEMPTS * (2 * TIMEOUT + 1)


def test_a_dripped_reply_within_the_timeout_is_delivered():
    plan = FaultPlan().drip("mail", 200)
    with SinkServer("127.0.0.1:0", faults=plan) as sink:
        outcomes = attempt_all(Target("smtp", *sink.address), pipelining=False)
    assert outcomes == ["ok"] * ATTEMPTS and sink.stats.messages == ATTEMPTS


# -- what only a hostile server does ------------------------------------------------------

HOSTILE = [
    ("close-after-421-at-mail", {}, "421 4.3.2 at MAIL"),
    ("close-mid-data", {}, "connection closed at END-OF-DATA"),
    ("endless-line", {}, "protocol error at BANNER"),
    ("endless-reply", {}, "protocol error at HELO"),
    ("drip-banner", {}, "timeout at BANNER"),
    ("non-ascii", {}, "550 5.1.1 at RCPT"),
    ("no-banner", {}, "timeout at BANNER"),
    ("bad-tls", {"tls": "implicit"}, None),
    ("never-reads", {"message": MESSAGE * 40000}, "timeout at END-OF-DATA"),
]


@pytest.mark.parametrize("mode, options, failure", HOSTILE, ids=[mode for mode, _, _ in HOSTILE])
def test_a_hostile_server_gives_one_failure_per_message_within_bounds(mode, options, failure):
    options = dict(options)
    message = options.pop("message", MESSAGE)
    tls = options.pop("tls", "")
    rss_before = max_rss_mib()
    with HostileServer(mode) as server:
        target = Target("smtp", "127.0.0.1", server.port, tls=tls)
        started = time.monotonic()
        outcomes = attempt_all(target, message=message, tls_verify=False)
        elapsed = time.monotonic() - started
        connections = server.connections
    if failure is None:  # a failed TLS handshake: a transport error at TLS, whichever kind
        assert all(outcome.endswith(" at TLS") for outcome in outcomes), outcomes
        assert len(set(outcomes)) == 1, outcomes
    else:
        assert outcomes == [failure] * ATTEMPTS
    assert connections == ATTEMPTS  # each failure closed the session; the next message reconnected
    # bounded in time: a reply must be whole within 2 timeouts; writing a message, one per send
    assert elapsed < ATTEMPTS * (2 * TIMEOUT + 1) + 2, f"{elapsed:.1f} s"
    # bounded in memory: what an endless server sent is not kept (the message itself is 8 MB)
    assert max_rss_mib() - rss_before < 48, f"RSS grew {max_rss_mib() - rss_before:.0f} MiB"


def test_non_ascii_replies_are_censored_when_shown():
    with HostileServer("non-ascii") as server:
        client = SmtpClient(Target("smtp", "127.0.0.1", server.port), timeout=TIMEOUT)
        try:
            with pytest.raises(SMTPError) as caught:
                client.send("a@example.com", ["b@example.com"], MESSAGE)
        finally:
            client.close()
    assert client.banner.text == "h?te.test ESMTP ?"  # one "?" per character that is not printable ASCII
    assert str(caught.value) == "550 5.1.1 <?nknown>?[31m: bo?te inconnue? at RCPT for <b@example.com>"


# -- through loadkit source -A, the real CLI -------------------------------------------------

SOURCE_CASES = [
    (["--reject", "rcpt:550"], "550 5.3.0 at RCPT"),
    (["--reject", "mail:421"], "421 4.3.0 at MAIL"),
    (["--reject", "data-end:451"], "451 4.3.0 at END-OF-DATA"),
    (["-q", "rcpt"], "connection closed at RCPT"),
    (["-Q", "data"], "421 4.3.0 at DATA"),
]


@pytest.mark.parametrize("options, failure", SOURCE_CASES, ids=[" ".join(o) for o, _ in SOURCE_CASES])
def test_loadkit_source_counts_every_failure_and_goes_on(tmp_path, options, failure):
    plan_options = options
    sink = subprocess.Popen([sys.executable, "-m", "loadkit", "sink", *plan_options, "--reject", "helo:500:0",
                             "--stats-json", str(tmp_path / "stats.json"), "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(sink.stdout.readline().rsplit(":", 1)[1])
        result = subprocess.run([sys.executable, "-m", "loadkit", "source", "-A", "-s", "2", "-m", "20",
                                 "-l", "200", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    finally:
        sink.terminate()
        sink.wait(10)
    assert result.returncode == 1, result.stderr  # a failure, counted, not an abort
    assert "Traceback" not in result.stdout + result.stderr
    summary = re.search(r"(\d+) messages \((\d+) delivered, (\d+) failed\)", result.stdout)
    sent, delivered, failed = map(int, summary.groups())
    assert sent == 20 and delivered + failed == sent and failed == 20
    assert re.search(rf"^\s+20\s+{re.escape(failure)}$", result.stdout, re.MULTILINE), result.stdout
