"""loadkit's client and `loadkit source` against Postfix's smtp-sink: counts must agree."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from loadkit.messages import MessageFactory
from loadkit.smtp import SmtpClient
from loadkit.urls import parse_endpoint
from tests.integration.peers import postfix_sink

pytestmark = pytest.mark.peer("smtp-sink")

SUMMARY = re.compile(r"(\d+) messages \((\d+) delivered, (\d+) failed\), (\d+) recipients")


@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
@pytest.mark.parametrize("reuse", [False, True], ids=["new-connection", "reused"])
def test_client_sends_what_smtp_sink_counts(lmtp, reuse):
    factory = MessageFactory(payload_size=2000, pool_size=4)
    recipients = ["1rcpt@example.test", "2rcpt@example.test", "3rcpt@example.test"]
    with postfix_sink(lmtp) as sink:
        client = SmtpClient(parse_endpoint(sink.url, "lmtp" if lmtp else "smtp"), timeout=10)
        delivered = 0
        for number in range(40):
            last = number == 39
            delivery = client.send("sender@example.test", recipients, factory.build(), quit=last or not reuse)
            assert delivery.ok and delivery.accepted == recipients
            delivered += delivery.delivered
        counts = sink.stop(sessions=1 if reuse else 40)
    assert delivered == 40 * 3
    assert counts["messages"] == 40
    assert counts["sessions"] == (1 if reuse else 40)


@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
@pytest.mark.parametrize("reuse", [False, True], ids=["new-connection", "reused"])
def test_loadkit_source_sends_exactly_m_messages(lmtp, reuse):
    with postfix_sink(lmtp) as sink:
        command = [sys.executable, "-m", "loadkit", "source", "-s", "5", "-m", "300", "-l", "1024", "-r", "3"]
        command += (["-L"] if lmtp else []) + (["-d"] if reuse else []) + [sink.url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        counts = sink.stop(sessions=5 if reuse else 300)
    assert result.returncode == 0, result.stderr
    sent, delivered, failed, recipients = (int(n) for n in SUMMARY.search(result.stdout).groups())
    assert (sent, delivered, failed, recipients) == (300, 300, 0, 900)
    assert counts["messages"] == 300
    if reuse:
        assert counts["sessions"] == 5
    else:
        assert counts["sessions"] == 300
    assert "p99" in result.stdout
