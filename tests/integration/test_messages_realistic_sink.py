"""Realistic mail through loadkit's client into loadkit's sink and Postfix's smtp-sink.

Into a real `loadkit sink --store` process: one whole turn of a realistic pool (500 messages: the size table, every
MIME kind, 1 to 5 recipients over weighted domains) is sent with
`loadkit.smtp.SmtpClient`; the sink keeps every message as a maildir file.
Each stored message must be, byte for byte, the one built; every one must
parse with Python's `email` package; the bytes and recipients the sink
counted must equal what the factory produced. Into Postfix's smtp-sink, a
peer we did not write: every kind is accepted (8-bit bodies declared with
BODY=8BITMIME) and counted once.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from email import policy
from email.parser import BytesParser

import pytest

from loadkit.messages import MessageFactory, needs_smtputf8, parse_trace
from loadkit.smtp import SmtpClient
from loadkit.urls import parse_endpoint, parse_url
from tests.integration.peers import loadkit_sink, postfix_sink

PROFILE = ("size=mix:realistic mime=attachments:0.2,html:0.3,utf8:0.1,smtputf8:0.05 "
           "recipients=1:80,2:15,5:5 domains=example.com:60,example.net:25,*:15")
SEND_SECONDS = 120  # the whole turn takes a few seconds on loopback; this only bounds a hang


def test_a_realistic_pool_arrives_whole_and_parses(tmp_path):
    factory = MessageFactory(seed=42, run_id="real", source_tag="mail", profile=PROFILE)
    turn = len(factory.message_sizes)
    assert turn == 500
    rng = random.Random(3)
    sent: dict[int, tuple[bytes, list[str]]] = {}
    store = tmp_path / "maildir"
    with loadkit_sink(tmp_path, "--store", str(store)) as (url, read_stats):
        client = SmtpClient(parse_url(url), timeout=30)
        deadline = time.monotonic() + SEND_SECONDS
        for sequence in range(turn):
            assert time.monotonic() < deadline, f"only {sequence} of {turn} messages sent in {SEND_SECONDS} s"
            message, recipients = factory.build(sequence), factory.recipients(rng)
            delivery = client.send(factory.sender, recipients, message)
            assert delivery.ok and delivery.delivered == len(recipients)
            sent[sequence] = (message, recipients)
        client.quit()
        stats = read_stats()

    assert stats["messages"] == turn
    assert stats["bytes"] == sum(factory.message_sizes) == sum(len(message) for message, _ in sent.values())
    assert stats["recipients"] == sum(len(recipients) for _, recipients in sent.values())
    assert stats["store"] == {"stored": turn, "skipped": 0, "failed": 0, "over_buffer": 0, "buffers_full": 0}

    names = os.listdir(store / "new")
    assert len(names) == turn
    kinds, domains = Counter(), Counter()
    for name in names:
        stored = (store / "new" / name).read_bytes()
        envelope, message = split_envelope(stored)
        sequence = parse_trace(message).sequence
        built, recipients = sent.pop(sequence)
        assert message == built  # the sink got every byte the factory made, no more
        assert len(message) == factory.size_of(sequence)
        assert envelope[1:] == [b"Delivered-To: " + address.encode() for address in recipients]
        kind = factory.kinds[sequence]
        kinds[kind] += 1
        domains.update(address.split("@")[1] for address in recipients)
        parsed = BytesParser(policy=policy.default).parsebytes(stored)
        assert parsed.defects == [] and all(part.defects == [] for part in parsed.walk())
        assert parsed["X-Loadkit-Trace"] is not None and parsed["Return-Path"] == f"<{factory.sender}>"
        if kind == "attachments":
            for part in parsed.iter_attachments():
                assert len(part.get_content()) == int(part.get_param("size", header="content-disposition"))
        elif kind == "html":
            assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
        elif kind in ("utf8", "smtputf8"):
            assert parsed.get_content() == message.partition(b"\r\n\r\n")[2].decode("utf-8")
            assert needs_smtputf8(message) == (kind == "smtputf8")
    assert sent == {}
    assert kinds == {"plain": 175, "html": 150, "attachments": 100, "utf8": 50, "smtputf8": 25}
    assert {"example.com", "example.net"} < set(domains) and len(domains) > 20


def split_envelope(stored: bytes) -> tuple[list[bytes], bytes]:
    """The sink's Return-Path and Delivered-To lines, and the message as it was sent."""
    lines, at = [], 0
    while stored.startswith((b"Return-Path: ", b"Delivered-To: "), at):
        end = stored.index(b"\r\n", at)
        lines.append(stored[at:end])
        at = end + 2
    return lines, stored[at:]


@pytest.mark.peer("smtp-sink")
def test_postfix_smtp_sink_accepts_every_kind():
    factory = MessageFactory(seed=8, run_id="real", source_tag="postfix", profile=(
        "size=lognormal:8k:1.0 mime=attachments:0.25,html:0.25,utf8:0.25 recipients=1:3,3:1 domains=a.test:1,*:1"))
    turn = len(factory.message_sizes)
    recipients_sent = 0
    with postfix_sink() as sink:
        client = SmtpClient(parse_endpoint(sink.url, "smtp"), timeout=30)
        deadline = time.monotonic() + SEND_SECONDS
        for sequence in range(turn):
            assert time.monotonic() < deadline, f"only {sequence} of {turn} messages sent in {SEND_SECONDS} s"
            recipients = factory.recipients()
            delivery = client.send(factory.sender, recipients, factory.build(sequence), quit=sequence == turn - 1)
            assert delivery.ok and delivery.delivered == len(recipients), factory.kinds[sequence]
            recipients_sent += len(recipients)
        assert "8BITMIME" in client.capabilities
        counts = sink.stop(sessions=1)
    assert counts["messages"] == turn == 256
    assert turn < recipients_sent < 3 * turn
    assert Counter(factory.kinds) == {"plain": 64, "html": 64, "attachments": 64, "utf8": 64}
