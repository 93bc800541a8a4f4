"""Recipient rules and the control port with real peers: Postfix relaying to the sink, smtplib sending.

Postfix is the peer that must make of the sink's answers what real
receivers' answers make of it: a deferred queue for ``defer`` and
greylisted recipients (the greylisted ones delivered on Postfix's retry),
a bounce for ``bounce``, with its DSN delivered to the sender's side (here
the same sink: the instance sends every recipient, bounces included, to its
one next hop). smtplib is the client whose failures must change at the
moment the control port changes the sink's faults.
"""

from __future__ import annotations

import json
import smtplib
import threading
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

from loadkit.instances import Postfix
from loadkit.probes._postfix_log import postfix_log_summary, wait_for_quiet_log
from loadkit.sink import SinkServer
from tests.conftest import require_root
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)

SENDER = "loadkit@loadkit.test"
RULES = """\
tempfail@*      defer
permfail@*      bounce
*@grey.test     greylist
*@*             accept
"""
# (recipient, messages): one recipient a message, so every count is per message; each greylisted
# message has a recipient of its own, so each is a triplet greylisted once
MIX = [("user@loadkit.test", 10), ("tempfail@loadkit.test", 4), ("permfail@loadkit.test", 3), ("grey{}@grey.test", 3)]


@pytest.fixture
def postfix_peer(peer):
    peer("postfix")
    require_root("a Postfix instance")


def message(recipient: str, number: int) -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = SENDER, recipient, f"rules {number}"
    mail.set_content(f"message {number} to {recipient}\n")
    return mail


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def stored_messages(store: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((store / "new").iterdir())]


@pytest.mark.slow
@pytest.mark.peer("postfix")
def test_postfix_defers_bounces_and_retries_as_the_rules_say(postfix_peer, instance_root):
    rules_path = instance_root / "rules.txt"
    rules_path.write_text(RULES)
    store = instance_root / "store"
    with SinkServer("127.0.0.1:0", rules=str(rules_path), store=str(store)) as sink:
        with Postfix(instance_root / "postfix", relay_to=sink.url) as postfix:
            with smtplib.SMTP(postfix.host, postfix.port, timeout=30) as client:
                number = 0
                for recipient, count in MIX:
                    for _ in range(count):
                        number += 1
                        assert client.send_message(message(recipient.format(number), number)) == {}  # Postfix takes them all
            accepted = 10 + 3  # delivered at the first try, greylisted ones at Postfix's retry (5-10 s on)
            bounces = 3
            assert wait_for(lambda: sink.stats.messages >= accepted + bounces, 60), sink.stats.as_dict()
            # what is left queued: the four deferred by the rule, nothing else
            assert wait_for(lambda: postfix.queue_counts()["deferred"] == 4 and postfix.queue_size() == 4, 30), \
                postfix.queue_counts()
        # Postfix stopped: no retry can come between reading its log and the sink's counters
        wait_for_quiet_log(postfix.log_path)
        log = postfix_log_summary(postfix.log_path)
        stats = sink.stats.as_dict()
    ours = log["by_sender"][SENDER]
    assert ours["sent"] == accepted and ours["bounced"] == bounces
    assert ours["deferred"] >= 4 + 3  # each tempfail at least once, each greylisted exactly once
    assert log["by_sender"][""] == {"sent": bounces}  # the DSNs, to the sender, through the same next hop
    assert stats["messages"] == accepted + bounces
    rules = stats["rules"]
    assert rules["permfail@* bounce"] == {"refused": 3, "passed": 0}
    assert rules["*@grey.test greylist"] == {"refused": 3, "passed": 3}
    assert rules["tempfail@* defer"]["refused"] == ours["deferred"] - 3 >= 4
    assert rules["tempfail@* defer"]["passed"] == 0
    assert rules["*@* accept"] == {"refused": 0, "passed": 10 + bounces}
    # the bounces reached the sender's side, each naming the recipient and carrying the sink's own text
    dsns = [mail for mail in stored_messages(store) if mail.startswith(b"Return-Path: <>\r\n")]
    assert len(dsns) == bounces
    for dsn in dsns:
        assert f"Delivered-To: {SENDER}".encode() in dsn
        assert b"<permfail@loadkit.test>" in dsn and b"550-5.1.1 The email account" in dsn
    delivered_to = [mail.split(b"Delivered-To: ", 1)[1].split(b"\r\n", 1)[0] for mail in stored_messages(store)]
    assert sorted(delivered_to) == sorted([b"user@loadkit.test"] * 10 + [b"grey%d@grey.test" % n for n in (18, 19, 20)]
                                          + [SENDER.encode()] * bounces)


def post_faults(url: str, body: str) -> dict:
    request = urllib.request.Request(url + "/faults", data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_a_control_change_mid_run_shows_on_the_clients_side_at_its_time():
    """smtplib sends on one connection; half-way the control port turns RCPT rejects from 0 to 50%."""
    outcomes: list[tuple[float, bool]] = []  # (time the message was done, accepted)
    with SinkServer("127.0.0.1:0", control="127.0.0.1:0") as sink:
        host, port = sink.address
        changed = threading.Event()

        def send() -> None:
            with smtplib.SMTP(host, port, timeout=10) as client:
                deadline = time.monotonic() + 20  # bounded in time and in count
                for number in range(600):
                    if number == 300:  # half-way: the change must have come (it usually comes earlier)
                        changed.wait(10)
                    if time.monotonic() > deadline:
                        break
                    try:
                        client.sendmail(SENDER, [f"user{number}@loadkit.test"], b"Subject: x\r\n\r\nhello\r\n")
                        outcomes.append((time.time(), True))
                    except smtplib.SMTPRecipientsRefused:
                        outcomes.append((time.time(), False))

        sender = threading.Thread(target=send)
        sender.start()
        assert wait_for(lambda: len(outcomes) >= 150, 20)
        change = post_faults(sink.control.url, "reject rcpt:550:0.5")["change"]
        changed.set()
        sender.join(30)
        assert not sender.is_alive()
        stats = sink.stats_record()
    at = change["time"]
    before = [ok for done, ok in outcomes if done <= at]
    after = [ok for done, ok in outcomes if done > at]
    assert len(before) >= 150 and all(before)  # not one failure before the change
    assert len(after) >= 100
    failures = after.count(False)
    # the sink's count and the client's agree exactly; the share is about half
    assert failures == stats["faults"]["reject"]["rcpt"]
    assert 0.35 * len(after) <= failures <= 0.65 * len(after)
    assert stats["messages"] == sum(ok for _, ok in outcomes)
    assert stats["changes"] == [change] and change["what"] == "faults: reject rcpt:550:0.5"
