"""What the server's settings wire into the sessions, as smtplib meets them: AUTH, traces and their log, rules, the store."""

from __future__ import annotations

import smtplib
import ssl
import time

import pytest

import loadkit.sink._server as sink_server
from loadkit.sink import FaultPlan, SinkError, SinkServer
from loadkit.sink._tls import self_signed

TRACED = "Subject: s\r\nX-Loadkit-Trace: run=r1; src=s1; seq=0000000001; t=%017.6f\r\n\r\nhello\r\n"


@pytest.mark.parametrize("given", ["mapping", "file"])
def test_auth_takes_the_users_and_the_mechanisms_it_was_given(given, tmp_path):
    users = {"alice": "s3cret"}
    if given == "file":
        (tmp_path / "users").write_text("alice:s3cret\n")
        users = str(tmp_path / "users")
    with SinkServer("127.0.0.1:0", auth_users=users, auth_mechanisms=("PLAIN",)) as server:
        with smtplib.SMTP(*server.address, timeout=5) as client:
            client.ehlo("c")
            assert client.esmtp_features["auth"].split() == ["PLAIN"]
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("alice", "wrong")
            client.login("alice", "s3cret")
    assert (server.stats.auth_ok, server.stats.auth_failed) == (1, 1)


def test_a_traced_message_is_counted_and_logged(tmp_path):
    log = tmp_path / "traces.log"
    with SinkServer("127.0.0.1:0", trace_log=str(log)) as server:
        with smtplib.SMTP(*server.address, timeout=5) as client:
            sent_at = time.time()
            client.sendmail("a@b", ["c@d"], TRACED % sent_at)
    assert server.stats.trace.messages == 1
    assert log.read_text().split()[:4] == ["r1", "s1", "1", f"{sent_at:.6f}"]


def test_the_rules_answer_and_their_counts_are_in_the_record(tmp_path):
    (tmp_path / "rules").write_text("permfail@* bounce\n")
    with SinkServer("127.0.0.1:0", rules=str(tmp_path / "rules")) as server:
        with smtplib.SMTP(*server.address, timeout=5) as client:
            refused = client.sendmail("a@b", ["permfail@d", "c@d"], "x\r\n")
        record = server.stats_record()
    assert list(refused) == ["permfail@d"] and refused["permfail@d"][0] == 550
    assert record["rules"] == {"permfail@* bounce": {"refused": 1, "passed": 0}}


def test_the_store_keeps_up_to_its_limit(tmp_path):
    maildir = tmp_path / "maildir"
    with SinkServer("127.0.0.1:0", store=str(maildir), store_max=1) as server:
        with smtplib.SMTP(*server.address, timeout=5) as client:
            client.sendmail("a@b", ["c@d"], "Subject: one\r\n\r\n1\r\n")
            client.sendmail("a@b", ["c@d"], "Subject: two\r\n\r\n2\r\n")
    stored = list((maildir / "new").iterdir())
    assert len(stored) == 1 and stored[0].read_bytes().endswith(b"Subject: one\r\n\r\n1\r\n")
    assert (server.stats.messages, server.stats.stored, server.stats.store_skipped) == (2, 1, 1)


def test_users_or_a_store_the_server_cannot_use_are_one_line_errors(tmp_path):
    (tmp_path / "users").write_text("no colon here\n")
    (tmp_path / "file").write_text("")
    for keywords, expected in [
        ({"auth_users": str(tmp_path / "missing")}, f"cannot read --auth-users {tmp_path}/missing: No such file or directory"),
        ({"auth_users": str(tmp_path / "users")}, f"{tmp_path}/users:1: expected user:password"),
        ({"store": str(tmp_path / "file")}, f"cannot use --store {tmp_path}/file: Not a directory"),
    ]:
        with pytest.raises(SinkError) as caught:
            SinkServer("127.0.0.1:0", **keywords)
        assert str(caught.value) == expected


def test_the_greeting_size_limit_and_esmtp_reach_the_client():
    with SinkServer("127.0.0.1:0", hostname="sink.test", greeting="ready", max_size=1000) as server:
        client = smtplib.SMTP(timeout=5)
        with client:
            assert client.connect(*server.address) == (220, b"sink.test ready")
            client.ehlo("c")
            assert client.esmtp_features["size"] == "1000"
    with SinkServer("127.0.0.1:0", esmtp=False) as server:
        with smtplib.SMTP(*server.address, timeout=5) as client:
            assert client.ehlo("c")[0] == 500
            assert client.helo("c")[0] == 250


def test_faults_given_with_a_control_port_apply_from_the_start():
    with SinkServer("127.0.0.1:0", control="127.0.0.1:0", faults=FaultPlan().hard_reject("rcpt")) as server:
        with smtplib.SMTP(*server.address, timeout=5) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("a@b", ["c@d"], "x\r\n")
    assert server.stats.fault_count("reject", "rcpt") == 1


def test_without_a_way_to_make_a_certificate_starttls_is_not_offered_and_the_sink_says_why(monkeypatch):
    monkeypatch.setattr(sink_server, "self_signing_problem", lambda: "no openssl here")
    with SinkServer("127.0.0.1:0") as server:
        assert server.tls_problem == "no openssl here"
        with smtplib.SMTP(*server.address, timeout=5) as client:
            client.ehlo("c")
            assert not client.has_extn("starttls")


def test_a_certificate_and_its_key_in_files_of_their_own(tmp_path):
    certificate, key = self_signed("sink.test")
    (tmp_path / "cert.pem").write_bytes(certificate)
    (tmp_path / "key.pem").write_bytes(key)
    with SinkServer("127.0.0.1:0", tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem")) as server:
        assert server.tls_problem is None
        with smtplib.SMTP(*server.address, timeout=5) as client:
            client.starttls(context=ssl._create_unverified_context())
            client.sendmail("a@b", ["c@d"], "x\r\n")
    assert (server.stats.tls_sessions, server.stats.messages) == (1, 1)


def test_the_record_carries_the_dkim_outcomes(tmp_path):
    pytest.importorskip("dkim")
    from loadkit.dkim import DkimSigner

    signer = DkimSigner.generate("s1", "signed.test", bits=1024)
    (tmp_path / "s1._domainkey.signed.test.txt").write_bytes(signer.dns_txt_record() + b"\n")
    with SinkServer("127.0.0.1:0", dkim_verify=str(tmp_path)) as server:
        with smtplib.SMTP(*server.address, timeout=5) as client:
            client.sendmail("a@b", ["c@d"], "Subject: unsigned\r\n\r\nx\r\n")
        record = server.stats_record()
    assert record["dkim"] == {"pass": {}, "fail": {}, "none": 1}
