"""loadkit's client against a real Postfix with STARTTLS and AUTH (SASL checked by Dovecot).

Postfix relays what it accepts to loadkit's sink: the client's count, the
Postfix log and the sink must agree.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from loadkit.instances import Dovecot, Postfix
from loadkit.instances._system import wait_until
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)
from tests.integration.test_instance_postfix import postfix_peer  # noqa: F401  (fixture)

pytestmark = [pytest.mark.peer("postfix"), pytest.mark.peer("dovecot")]

SUMMARY = re.compile(r"(\d+) messages \((\d+) delivered, (\d+) failed\)")


def source(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadkit", "source", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def postfix_with_auth(postfix_peer, peer, instance_root):
    peer("dovecot")
    with Dovecot(instance_root / "dovecot", password="s3cret") as dovecot, \
            Postfix(instance_root / "postfix", sasl_socket=dovecot.auth_socket) as postfix:
        yield postfix


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_and_auth_then_every_message_reaches_the_sink(postfix_with_auth, mechanism):
    postfix = postfix_with_auth
    result = source(
        "-s", "4", "-m", "100", "-d", "--starttls", "--tls-no-verify",
        "--auth", "alice@example.com:s3cret", "--auth-mechanism", mechanism, f"127.0.0.1:{postfix.port}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert SUMMARY.search(result.stdout).groups() == ("100", "100", "0")
    assert postfix.wait_for_empty_queue(60)
    log = lambda: postfix.log_path.read_text()  # noqa: E731
    assert wait_until(lambda: log().count("status=sent") == 100, 10)
    assert log().count(f"sasl_method={mechanism}, sasl_username=alice@example.com") == 100  # logged per message
    postfix.stop()
    assert postfix.sink_stats()["messages"] == 100


def test_a_wrong_password_is_refused_at_auth_by_postfix(postfix_with_auth):
    result = source(
        "-m", "1", "--starttls", "--tls-no-verify", "--auth", "alice@example.com:wrong",
        f"127.0.0.1:{postfix_with_auth.port}",
    )
    assert result.returncode == 1
    assert re.search(r"^\s+1\s+535 5\.7\.8 at AUTH$", result.stdout, re.MULTILINE), result.stdout


def test_auth_without_tls_is_refused_before_sending_when_postfix_offers_it_only_over_tls(
    postfix_peer, peer, instance_root
):
    peer("dovecot")
    with Dovecot(instance_root / "dovecot", password="s3cret") as dovecot, \
            Postfix(instance_root / "postfix", sasl_socket=dovecot.auth_socket,
                    settings={"smtpd_tls_auth_only": "yes"}) as postfix:
        result = source("-m", "1", "--auth", "alice@example.com:s3cret", f"127.0.0.1:{postfix.port}")
    assert result.returncode == 1
    assert re.search(r"^\s+1\s+AUTH not supported at AUTH$", result.stdout, re.MULTILINE), result.stdout
