"""A real Postfix instance (``loadkit.instances.Postfix``) relaying to loadkit's sink or Dovecot.

Postfix itself is the peer: its smtpd, queue manager and smtp client carry
every message; counts come from the sink's own counters, Postfix's log and
Dovecot's maildirs, never from our client alone.
"""

from __future__ import annotations

import base64
import smtplib
import ssl
import subprocess
import sys

import pytest

from loadkit.instances import Dovecot, InstanceError, Postfix
from loadkit.instances._system import is_alive, listens, wait_until
from tests.conftest import require_root
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)

SEND_TIMEOUT = 120  # seconds for a bounded loadkit source run
DRAIN_TIMEOUT = 60  # seconds for Postfix's queue to empty


@pytest.fixture
def postfix_peer(peer):
    peer("postfix")
    require_root("a Postfix instance")


def loadkit_source(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "source", *args], capture_output=True, text=True, timeout=SEND_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def count_in_log(postfix: Postfix, text: str) -> int:
    return postfix.log_path.read_text().count(text)


@pytest.mark.peer("postfix")
def test_relays_every_message_to_the_sink_then_stops_everything(postfix_peer, instance_root):
    postfix = Postfix(instance_root / "postfix", port=0).start()
    try:
        assert postfix.smtp_url.startswith("smtp://127.0.0.1:") and postfix.sink.is_running()
        assert postfix.relay_url == postfix.sink.url != postfix.smtp_url
        result = loadkit_source("-s", "5", "-m", "200", f"127.0.0.1:{postfix.port}")
        assert "200 messages (200 delivered, 0 failed)" in result.stdout
        assert postfix.wait_for_empty_queue(DRAIN_TIMEOUT), postfix.queue_counts()
        # postlogd writes asynchronously: the last lines may trail the empty queue
        assert wait_until(lambda: count_in_log(postfix, "status=sent") >= 200, 10)
        assert count_in_log(postfix, "status=sent") == 200
        assert count_in_log(postfix, f"relay=127.0.0.1[127.0.0.1]:{postfix.sink.port}") == 200
        master_pid, sink_pid = postfix.master_pid, postfix.sink.pid
        assert is_alive(master_pid)
    finally:
        postfix.stop()
    assert not is_alive(master_pid) and not is_alive(sink_pid)
    assert not listens("127.0.0.1", postfix.port) and not postfix.is_running()
    stats = postfix.sink_stats()
    assert (stats["messages"], stats["recipients"]) == (200, 200)


@pytest.mark.peer("postfix")
def test_offers_starttls_with_its_own_certificate(postfix_peer, instance_root):
    with Postfix(instance_root / "postfix") as postfix:
        context = ssl.create_default_context(cafile=str(postfix.tls_certificate))
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as client:
            client.starttls(context=context)  # verifies the chain and the name 127.0.0.1
            assert client.sock.version().startswith("TLS")
            client.sendmail("a@example.com", ["b@example.org"], b"Subject: tls\r\n\r\nover TLS\r\n")
        assert postfix.wait_for_empty_queue(DRAIN_TIMEOUT)
        assert wait_until(lambda: count_in_log(postfix, "TLS connection established from") == 1, 10)
    assert postfix.sink_stats()["messages"] == 1


@pytest.mark.peer("postfix")
@pytest.mark.peer("dovecot")
def test_delivers_over_lmtp_to_dovecot(postfix_peer, peer, instance_root):
    peer("dovecot")
    with Dovecot(instance_root / "dovecot") as dovecot, \
            Postfix(instance_root / "postfix", relay_to=dovecot.lmtp_url) as postfix:
        assert postfix.sink is None and postfix.relay_url == dovecot.lmtp_url
        loadkit_source("-s", "4", "-m", "20", "-r", "2", f"127.0.0.1:{postfix.port}")
        assert postfix.wait_for_empty_queue(DRAIN_TIMEOUT), postfix.queue_counts()
        assert wait_until(lambda: dovecot.delivered_count() >= 40, 10)
        assert dovecot.delivered_count() == 40
        assert wait_until(lambda: count_in_log(postfix, "status=sent") >= 40, 10)
        assert count_in_log(postfix, "status=sent") == 40


@pytest.mark.parametrize("where, message", [
    ("smtp:192.0.2.1:25", "only delivers to loopback"),
    ("lmtp:mx.example.com:24", "only delivers to loopback"),
    ("smtp+unix:///tmp/x", "Postfix speaks SMTP over TCP only"),
    ("pop3:127.0.0.1:110", "expected smtp:HOST:PORT"),
])
def test_refuses_a_next_hop_off_this_machine(tmp_path, where, message):
    with pytest.raises(InstanceError, match=message):
        Postfix(tmp_path / "postfix", relay_to=where)


@pytest.mark.peer("postfix")
@pytest.mark.peer("dovecot")
def test_auth_is_checked_by_dovecot_over_starttls(postfix_peer, peer, instance_root):
    peer("dovecot")
    with Dovecot(instance_root / "dovecot", password="s3cret") as dovecot, \
            Postfix(instance_root / "postfix", sasl_socket=dovecot.auth_socket) as postfix:
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as client:
            client.starttls(context=ssl.create_default_context(cafile=str(postfix.tls_certificate)))
            client.ehlo()
            assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
            assert client.login("alice@example.com", "s3cret")[0] == 235
            client.sendmail("alice@example.com", ["bob@example.org"], b"Subject: auth\r\n\r\nhi\r\n")
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as client:
            client.ehlo()
            # one attempt: smtplib's login() would try LOGIN after PLAIN, and
            # Dovecot delays repeated failures from one address (auth penalty)
            wrong = base64.b64encode(b"\0alice@example.com\0wrong").decode()
            assert client.docmd("AUTH", f"PLAIN {wrong}")[0] == 535
        assert postfix.wait_for_empty_queue(DRAIN_TIMEOUT)
        assert wait_until(lambda: count_in_log(postfix, "sasl_method=PLAIN, sasl_username=alice@example.com") == 1, 10)
    assert postfix.sink_stats()["messages"] == 1


@pytest.mark.peer("postfix")
def test_auth_needs_a_running_dovecot(postfix_peer, instance_root):
    with pytest.raises(InstanceError, match="no Dovecot auth socket at .*: start Dovecot first"):
        Postfix(instance_root / "postfix", sasl_socket=instance_root / "nowhere" / "auth-client").start()
