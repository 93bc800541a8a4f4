"""DKIM signatures of generated messages, verified by dkimpy against the matching public key."""

from __future__ import annotations

import dkim
import pytest

from loadkit.dkim import DkimError, DkimSigner
from loadkit.messages import MessageFactory, parse_trace

SIGNER = DkimSigner.generate("loadkit", "loadkit.test", bits=1024)  # small key: a fast test


def dns_for(signer: DkimSigner):
    def lookup(name, timeout=5):
        return signer.dns_txt_record() if name == b"loadkit._domainkey.loadkit.test." else None
    return lookup


def test_every_stamped_message_verifies_and_keeps_its_size():
    factory = MessageFactory(payload_size=2000, pool_size=4, dkim=SIGNER, seed=1)
    messages = [factory.build() for _ in range(8)]  # every pooled message, twice, with different stamps
    assert len({len(m) for m in messages}) == 1 == len({factory.message_size, len(messages[0])})
    for message in messages:
        assert dkim.verify(message, dnsfunc=dns_for(SIGNER))
        assert parse_trace(message) is not None
    assert len(messages[0].split(b"\r\n\r\n", 1)[1]) == 2000


def test_a_changed_body_or_signed_header_or_another_key_fails():
    message = MessageFactory(payload_size=500, pool_size=1, dkim=SIGNER).build()
    assert not dkim.verify(message[:-10] + b"tampered\r\n", dnsfunc=dns_for(SIGNER))
    assert not dkim.verify(message.replace(b"Subject: ", b"Subject: X", 1), dnsfunc=dns_for(SIGNER))
    other = DkimSigner.generate("loadkit", "loadkit.test", bits=1024)
    assert not dkim.verify(message, dnsfunc=dns_for(other))


def test_a_given_key_file_is_used(tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(SIGNER.private_key_pem)
    signer = DkimSigner.from_file("loadkit", "loadkit.test", path)
    assert dkim.verify(MessageFactory(payload_size=100, dkim=signer).build(), dnsfunc=dns_for(SIGNER))
    with pytest.raises(DkimError):
        DkimSigner("loadkit", "loadkit.test", "not a key")
