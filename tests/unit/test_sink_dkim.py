"""The sink's DKIM verification: key files, pass / fail / none by domain, through a real sink."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys

import pytest

from loadkit.dkim import DkimSigner
from loadkit.messages import MessageFactory
from loadkit.sink import SinkError, SinkServer
from loadkit.sink._dkim import DkimVerifier, read_key_records
from loadkit.sink._full import FullSmtpSession, session_class_for
from loadkit.sink._protocol import SmtpSession

pytest.importorskip("dkim")


@pytest.fixture(scope="module")
def signer() -> DkimSigner:
    return DkimSigner.generate("s1", "signed.test", bits=1024)


@pytest.fixture()
def key_dir(tmp_path, signer):
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "s1._domainkey.signed.test.txt").write_bytes(signer.dns_txt_record() + b"\n")
    return folder


def signed(signer: DkimSigner, body: bytes = b"Hello.\r\n", subject: bytes = b"hi") -> bytes:
    message = b"From: a@signed.test\r\nTo: b@example.com\r\nSubject: " + subject + b"\r\n\r\n" + body
    return signer.signature_header(message) + message


def test_a_txt_record_file_is_found_by_its_name(key_dir, signer):
    assert read_key_records(key_dir) == {b"s1._domainkey.signed.test": signer.dns_txt_record()}


def test_an_opendkim_genkey_zone_line_names_its_own_key(tmp_path, signer):
    record = signer.dns_txt_record()
    (tmp_path / "s1.txt").write_bytes(
        b's1._domainkey\tIN\tTXT\t( "' + record[:40] + b'"\n\t  "' + record[40:]
        + b'" )  ; ----- DKIM key s1 for signed.test\n')
    assert read_key_records(tmp_path / "s1.txt") == {b"s1._domainkey.signed.test": record}


def test_a_pem_public_key_is_a_record_too(tmp_path, signer):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(signer.private_key_pem, password=None)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "s1._domainkey.signed.test.pem").write_bytes(pem)
    verifier = DkimVerifier.from_path(tmp_path)
    assert verifier.verify(signed(signer)) == "pass:signed.test"


def test_no_key_or_no_file_is_one_line(tmp_path):
    with pytest.raises(SinkError, match="no DKIM public key found"):
        read_key_records(tmp_path)
    with pytest.raises(SinkError, match="--dkim-verify .*missing"):
        read_key_records(tmp_path / "missing")


def test_pass_fail_and_none_are_counted_by_signing_domain(key_dir, signer):
    verifier = DkimVerifier.from_path(key_dir)
    other = DkimSigner.generate("s1", "unknown.test", bits=1024)
    tampered = signed(signer).replace(b"Subject: hi", b"Subject: HI")
    results = [verifier.verify(signed(signer)), verifier.verify(tampered),
               verifier.verify(b"From: a@x\r\n\r\nplain\r\n"), verifier.verify(signed(other)),
               verifier.verify(signed(signer, body=b"changed body\r\n").replace(b"changed", b"CHANGED"))]
    assert results == ["pass:signed.test", "fail:signed.test", "none", "fail:unknown.test", "fail:signed.test"]
    assert verifier.as_dict() == {"pass": {"signed.test": 1}, "fail": {"signed.test": 2, "unknown.test": 1},
                                  "none": 1}


def test_a_malformed_message_or_signature_fails_without_an_exception(key_dir, signer):
    verifier = DkimVerifier.from_path(key_dir)
    assert verifier.verify(b"DKIM-Signature: v=1; nonsense\r\n\r\nbody\r\n") == "fail:?"
    assert verifier.verify(b"DKIM-Signature: v=1; a=rsa-sha256; d=signed.test; s=s1; h=from; bh=x; b=y\r\n"
                           b"From: a@signed.test\r\n\r\nbody\r\n") == "fail:signed.test"
    assert verifier.verify(b"no header at all") in ("none", "fail:?")


def test_a_captured_message_is_unstuffed_before_it_is_verified(key_dir, signer):
    verifier = DkimVerifier.from_path(key_dir)
    message = signed(signer, body=b"line one\r\n.leading dot\r\n")
    stuffed = b"\r\n" + message.replace(b"\r\n.", b"\r\n..")
    assert verifier.verify_captured(stuffed, stuffed=True, size=len(message)) == "pass:signed.test"


def test_the_option_off_keeps_the_plain_session_class():
    from loadkit.sink import SinkProfile

    assert session_class_for(SinkProfile()) is SmtpSession
    assert SinkServer("127.0.0.1:0", trace=False).profile.session_class is SmtpSession


def test_a_sink_counts_every_message_of_a_realistic_signed_mix(key_dir, signer):
    factory = MessageFactory(seed=3, dkim=signer, profile="size=mix:realistic mime=attachments:0.3,html:0.3")
    unsigned = MessageFactory(seed=4)
    with SinkServer("127.0.0.1:0", trace=False, dkim_verify=str(key_dir)) as server:
        assert server.profile.session_class is FullSmtpSession
        host, port = server.address
        with smtplib.SMTP(host, port) as client:
            for _ in range(40):
                client.sendmail("a@signed.test", ["b@example.com"], factory.build())
            for _ in range(3):
                client.sendmail("a@signed.test", ["b@example.com"], unsigned.build())
            broken = factory.build().replace(b"\r\nSubject: ", b"\r\nSubject: X", 1)
            client.sendmail("a@signed.test", ["b@example.com"], broken)
    assert server.stats.messages == 44
    assert server.profile.dkim.as_dict() == {"pass": {"signed.test": 40}, "fail": {"signed.test": 1}, "none": 3}


def test_the_command_writes_the_counts_to_its_stats(tmp_path, key_dir, signer):
    stats = tmp_path / "stats.json"
    sink = subprocess.Popen([sys.executable, "-m", "loadkit", "sink", "--dkim-verify", str(key_dir),
                            "--stats-json", str(stats), "-M", "2", "127.0.0.1:0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = sink.stdout.readline().rsplit(" ", 1)[1].strip()
        port = int(url.rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("a@signed.test", ["b@example.com"], signed(signer))
            client.sendmail("a@signed.test", ["b@example.com"], b"Subject: none\r\n\r\nx\r\n")
        assert sink.wait(30) == 0
    finally:
        sink.kill()
        sink.wait()
    assert json.loads(stats.read_text())["dkim"] == {"pass": {"signed.test": 1}, "fail": {}, "none": 1}


def test_a_bad_key_path_on_the_command_line_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "loadkit", "sink", "--dkim-verify", str(tmp_path / "nope"),
                           "127.0.0.1:0"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "--dkim-verify" in done.stderr


def test_the_trace_log_carries_each_messages_outcome(tmp_path, key_dir, signer):
    factory = MessageFactory(seed=5, dkim=signer, run_id="r1", source_tag="s1")
    log = tmp_path / "traces.log"
    with SinkServer("127.0.0.1:0", dkim_verify=str(key_dir), trace_log=str(log)) as server:
        with smtplib.SMTP(*server.address) as client:
            client.sendmail("a@signed.test", ["b@example.com"], factory.build())
            client.sendmail("a@signed.test", ["b@example.com"], factory.build().replace(b"Subject: ", b"Subject: x", 1))
    assert [line.split()[5] for line in log.read_text().splitlines()] == ["dkim=pass:signed.test",
                                                                          "dkim=fail:signed.test"]
