"""Postfix + OpenDKIM as a milter, signing or verifying, with loadkit's sink verifying what arrives.

Signing: every message smtplib submits is signed by the milter and every
one verifies at the sink (e2e counts exact). Verifying: messages signed by
loadkit with the instance's own key, some altered before they are sent,
get OpenDKIM's Authentication-Results (pass or fail, from its test key
file, no DNS), as the sink's maildir shows.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from loadkit.dkim import DkimSigner
from loadkit.instances import Postfix
from loadkit.messages import MessageFactory
from tests.integration.peers import loadkit_sink
from tests.integration.test_dkim_amavis import PROFILE, delivered_summary, send_all
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)
from tests.integration.test_instance_postfix import postfix_peer  # noqa: F401  (fixture)

DOMAIN = "milter.test"


@pytest.fixture
def opendkim_peer(peer):
    peer("opendkim")


@pytest.mark.slow
@pytest.mark.peer("postfix")
@pytest.mark.peer("opendkim")
@pytest.mark.parametrize("socket", ["inet", "unix"])
def test_the_milter_signs_every_message_and_every_one_verifies_at_the_sink(postfix_peer, opendkim_peer, instance_root,
                                                                          socket):
    factory = MessageFactory(seed=21, profile=PROFILE)
    with Postfix(instance_root / "postfix", dkim="opendkim", dkim_domain=DOMAIN, dkim_socket=socket) as postfix:
        milter = postfix.dkim_filter
        assert milter.is_running() and milter.mode == "sign"
        assert milter.milter.startswith(socket + ":")
        assert f"smtpd_milters = {milter.milter}" in postfix.config_dir.joinpath("main.cf").read_text()
        accepted = send_all(postfix.port, factory, 120)
        e2e = delivered_summary(postfix, accepted)
    sink = postfix.sink_stats()
    assert not milter.is_running()  # stopped with Postfix
    assert e2e["accepted"] == e2e["delivered"] == 120 == sink["messages"]
    assert e2e["lost"] == e2e["duplicated"] == e2e["unexpected"] == 0
    assert e2e["dkim"] == sink["dkim"] == {"pass": {DOMAIN: 120}, "fail": {}, "none": 0}


@pytest.mark.slow
@pytest.mark.peer("postfix")
@pytest.mark.peer("opendkim")
def test_in_verify_mode_the_milter_says_pass_or_fail_from_its_own_key(postfix_peer, opendkim_peer, instance_root):
    store = instance_root / "maildir"
    with loadkit_sink(instance_root, "--store", str(store)) as (url, read_stats):
        with Postfix(instance_root / "postfix", relay_to=url, dkim="opendkim", dkim_mode="verify",
                     dkim_domain=DOMAIN, dkim_selector="v1") as postfix:
            key = postfix.dkim_filter.key
            signer = DkimSigner.from_file("v1", DOMAIN, key.private_key)
            good = MessageFactory(seed=1, dkim=signer)
            accepted = send_all(postfix.port, good, 12)
            altered = _Altered(MessageFactory(seed=2, dkim=signer))
            send_all(postfix.port, altered, 5, accepted=accepted)
            send_all(postfix.port, MessageFactory(seed=3), 3, accepted=accepted)  # unsigned
            assert postfix.wait_for_empty_queue(60)
        stats = read_stats()
    assert stats["messages"] == 20
    verdicts = []
    for path in sorted((store / "new").iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        results = " ".join(message.get_all("Authentication-Results") or [])
        verdicts.append("dkim=pass" if "dkim=pass" in results else "dkim=fail" if "dkim=fail" in results
                        else "dkim=none")
    assert verdicts.count("dkim=pass") == 12
    assert verdicts.count("dkim=fail") == 5
    assert verdicts.count("dkim=none") == 3


class _Altered:
    """A factory whose signed messages get a changed Subject after signing."""

    def __init__(self, factory: MessageFactory):
        self.factory = factory
        self.sender = factory.sender

    def build(self) -> bytes:
        return self.factory.build().replace(b"\r\nSubject: ", b"\r\nSubject: altered ", 1)

    def recipients(self) -> list[str]:
        return self.factory.recipients()


@pytest.mark.parametrize("args, text", [
    (["dovecot", "up", "--dkim", "opendkim"], "--dkim and its options are for postfix only"),
    (["postfix", "up", "--dkim-mode", "verify"], "go with --dkim"),
    (["postfix", "up", "--dkim", "amavis", "--dkim-socket", "unix"], "go with --dkim opendkim"),
    (["postfix", "status", "--dkim", "opendkim"], "--dkim and its options go with up"),
    (["postfix", "up", "--dkim", "opendkim", "--dkim-domain", "not a domain"], "not a domain name"),
])
def test_dkim_flag_mistakes_are_one_line(instance_root, args, text):
    from tests.integration.test_instance_cli import one_line_error, target

    one_line_error(target(*args, "--dir", str(instance_root / "x")), text)
