"""A relay that rewrites a signed header after signing: the sink counts `fail` for exactly those messages.

Postfix signs (amavisd-new on the submission path, or OpenDKIM as a milter),
then its smtp client rewrites the Subject of some messages on the way to the
sink (``smtp_header_checks`` REPLACE), as a later hop that "fixes" headers
would. Those messages, and only those, fail verification at the sink; the
rest pass.
"""

from __future__ import annotations

import pytest

from loadkit.instances import Postfix
from loadkit.messages import MessageFactory
from tests.integration.test_dkim_amavis import PROFILE, delivered_summary, send_all
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)
from tests.integration.test_instance_postfix import postfix_peer  # noqa: F401  (fixture)

pytestmark = [pytest.mark.peer("postfix"), pytest.mark.slow]

DOMAIN = "relay.test"
PROGRAMS = {"amavis": "amavisd", "opendkim": "opendkim"}


@pytest.mark.parametrize("dkim", [pytest.param(dkim, marks=pytest.mark.peer(program)) for dkim, program in PROGRAMS.items()])
def test_only_the_rewritten_messages_fail(postfix_peer, peer, instance_root, dkim):
    peer(PROGRAMS[dkim])
    checks = instance_root / "smtp_header_checks"
    checks.write_text("/^Subject: rewrite me(.*)$/ REPLACE Subject: rewritten by the relay$1\n")
    intact = MessageFactory(seed=31, profile=PROFILE)
    rewritten = MessageFactory(seed=32, profile=PROFILE, subject="rewrite me please")
    with Postfix(instance_root / "postfix", dkim=dkim, dkim_domain=DOMAIN,
                 settings={"smtp_header_checks": f"regexp:{checks}"}) as postfix:
        port = postfix.submission_port if dkim == "amavis" else postfix.port
        accepted = send_all(port, intact, 30)
        send_all(port, rewritten, 7, accepted=accepted)
        send_all(port, intact, 13, accepted=accepted)
        e2e = delivered_summary(postfix, accepted)
        log = postfix.log_path.read_text()
    sink = postfix.sink_stats()
    assert log.count("replace: header Subject: rewrite me please") == 7
    assert e2e["accepted"] == e2e["delivered"] == 50 == sink["messages"]
    assert e2e["dkim"] == sink["dkim"] == {"pass": {DOMAIN: 43}, "fail": {DOMAIN: 7}, "none": 0}
