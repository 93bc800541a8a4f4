"""Postfix + amavisd-new signing DKIM on the submission path, verified by loadkit's sink.

The classic two-port layout, on loopback: mail submitted with AUTH (SASL
checked by Dovecot) or from mynetworks on the submission port goes to
amavisd as ORIGINATING and comes back signed; mail on the plain port goes
through amavisd's inbound port and comes back unsigned. The sink Postfix
starts verifies every message with the key's public half from the state
folder. smtplib sends a realistic mix (sizes, MIME, recipients, domains);
what it saw accepted is checked against the sink's trace log (e2e), the
sink's own counters and amavisd's log, exactly.
"""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

import pytest

from loadkit.e2e import AcceptedMessages, delivery_summary
from loadkit.instances import Dovecot, Postfix
from loadkit.instances._system import wait_until
from loadkit.messages import MessageFactory
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)
from tests.integration.test_instance_postfix import postfix_peer  # noqa: F401  (fixture)

pytestmark = [pytest.mark.peer("postfix"), pytest.mark.peer("amavisd"), pytest.mark.slow]

PROFILE = "size=mix:realistic mime=attachments:0.2,html:0.3 recipients=1:80,2:20 domains=example.com:60,example.net:40"
DOMAIN = "signer.test"
DRAIN_TIMEOUT = 120.0  # seconds: a few messages of several MiB go through amavisd twice as slowly as small ones


@pytest.fixture
def amavis_peer(peer):
    peer("amavisd")


def send_all(port: int, factory: MessageFactory, count: int, login: tuple[str, str] | None = None,
             accepted: AcceptedMessages | None = None) -> AcceptedMessages:
    """`count` messages of `factory` over one smtplib session; each one accepted is remembered."""
    accepted = accepted if accepted is not None else AcceptedMessages()
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("loadkit.test")
        if login is not None:
            client.login(*login)
        for _ in range(count):
            message = factory.build()
            refused = client.sendmail(factory.sender, factory.recipients(), message)
            assert refused == {}
            accepted.add(message)
    return accepted


def delivered_summary(postfix: Postfix, accepted: AcceptedMessages) -> dict:
    """Drain Postfix's queue, then the e2e summary of what reached its sink (the sink still running)."""
    assert postfix.wait_for_empty_queue(DRAIN_TIMEOUT), postfix.queue_counts()
    trace_log = postfix.sink.trace_log_path
    assert wait_until(lambda: len(trace_log.read_text().splitlines()) >= accepted.count, 10)
    return delivery_summary(accepted, trace_log)


@pytest.mark.peer("dovecot")
def test_submitted_mail_is_signed_inbound_mail_is_not_and_the_sink_verifies_every_message(
        postfix_peer, amavis_peer, peer, instance_root):
    peer("dovecot")
    factory = MessageFactory(seed=13, profile=PROFILE, sender="alice@signer.test")
    with Dovecot(instance_root / "dovecot", password="s3cret") as dovecot, \
            Postfix(instance_root / "postfix", sasl_socket=dovecot.auth_socket, dkim="amavis",
                    dkim_domain=DOMAIN, dkim_selector="mail2026") as postfix:
        assert postfix.submission_port and postfix.submission_port != postfix.port
        accepted = send_all(postfix.submission_port, factory, 60, login=("alice@signer.test", "s3cret"))
        send_all(postfix.submission_port, factory, 20, accepted=accepted)  # from mynetworks, no AUTH
        send_all(postfix.port, factory, 15, accepted=accepted)  # inbound: verified by amavisd, not signed
        e2e = delivered_summary(postfix, accepted)
        amavis_log = postfix.dkim_filter.log_path.read_text()
        assert postfix.dkim_filter.is_running()
        record = (postfix.dkim_public_dir / f"mail2026._domainkey.{DOMAIN}.txt").read_text()
    sink = postfix.sink_stats()

    assert record.startswith("v=DKIM1; k=rsa; p=")
    assert e2e["accepted"] == e2e["delivered"] == 95 == sink["messages"]
    assert e2e["lost"] == e2e["duplicated"] == e2e["unexpected"] == e2e["untraced"] == 0
    assert e2e["dkim"] == sink["dkim"] == {"pass": {DOMAIN: 80}, "fail": {}, "none": 15}
    # amavisd's own account: 80 signed as ORIGINATING, 15 passed on inbound
    assert amavis_log.count(f"dkim_new=mail2026:{DOMAIN}") == 80
    assert amavis_log.count("{RelayedInternal}, ORIGINATING") == 80
    assert amavis_log.count("{RelayedInbound}") == 15
    assert not postfix.dkim_filter.is_running()  # stopped with Postfix


def test_up_status_down_from_the_command_line_start_and_stop_amavisd_with_postfix(postfix_peer, amavis_peer,
                                                                                   instance_root):
    from loadkit.instances._system import is_alive, listens
    from loadkit.results import read_instance
    from tests.integration.test_instance_cli import target

    state = instance_root / "postfix"
    up = target("postfix", "up", "--dir", str(state), "--dkim", "amavis", "--dkim-domain", DOMAIN)
    assert up.returncode == 0, up.stderr
    assert f"public half in {state / 'dkim' / 'public'}" in up.stdout
    try:
        info = read_instance(state)
        dkim = info["dkim"]
        assert dkim["filter"] == "amavis" and is_alive(dkim["pid"])
        assert set(dkim["ports"]) == {"inbound", "originating", "verify_return", "sign_return"}
        assert all(listens("127.0.0.1", port) for port in dkim["ports"].values())
        assert Path(dkim["key"]["txt_record"]).read_text().startswith("v=DKIM1; k=rsa; p=")
        assert info["submission_url"].startswith("smtp://127.0.0.1:")
        status = target("postfix", "status", "--dir", str(state), "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["dkim_running"] is True
    finally:
        down = target("postfix", "down", "--dir", str(state))
    assert down.returncode == 0, down.stderr
    assert not is_alive(dkim["pid"])
    assert not any(listens("127.0.0.1", port) for port in dkim["ports"].values())
