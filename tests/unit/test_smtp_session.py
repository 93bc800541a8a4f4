"""The session's extensions byte for byte: STARTTLS, implicit TLS, AUTH PLAIN / LOGIN / CRAM-MD5.

Against the scripted server of tests/unit/fake_smtp.py speaking TLS with a
self-signed certificate (so the client runs with ``tls_verify=False``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from gevent import ssl

from loadkit.smtp import SMTPConnectError, SMTPDisconnected, SMTPNotSupportedError, SMTPReplyError, SMTPTimeoutError
from tests.unit import fake_smtp
from tests.unit.fake_smtp import CLOSE, SILENT, Split, certificate_pem, ehlo_offering
from tests.unit.test_smtp_client import MESSAGE, SENDER, on

serve, client_for = fake_smtp.serve, fake_smtp.client_for  # fixtures: a server per test, clients closed after it

CHALLENGE = b"<1896.697170952@fake.test>"


def auth_script(*replies: bytes):
    """Answer AUTH and the lines after it with `replies`, in order; the rest as usual."""
    pending = []

    def respond(line, session):
        if line.startswith(b"AUTH"):
            pending[:] = list(replies)
        return pending.pop(0) if pending else None
    return respond


def test_starttls_then_ehlo_again_and_the_transaction_inside_tls(serve, client_for):
    server = serve(tls="starttls", ehlo=ehlo_offering("STARTTLS"))
    client = client_for(server, starttls=True, tls_verify=False)
    assert client.send(SENDER, ["a@example.com"], MESSAGE, quit=True).ok

    session = server.ended_session()
    assert session.tls
    assert session.verbs() == [b"EHLO", b"STARTTLS", b"EHLO", b"MAIL", b"RCPT", b"DATA", b".", b"QUIT"]
    in_clear = [received for received, _ in session.exchanges()[:3]]
    assert in_clear == [b"", b"EHLO loadkit.test\r\n", b"STARTTLS\r\n"]  # nothing else before the handshake
    assert session.messages == [MESSAGE]


def test_starttls_required_but_not_offered_is_refused_before_anything_else(serve, client_for):
    server = serve()
    client = client_for(server, starttls=True, tls_verify=False)
    with pytest.raises(SMTPNotSupportedError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.extension, repr(caught.value)) == ("STARTTLS", "STARTTLS not supported at STARTTLS")
    assert not client.connected
    assert server.ended_session().verbs() == [b"EHLO"]


def test_implicit_tls_reads_the_banner_inside_tls(serve, client_for):
    server = serve(tls="implicit")
    timings = {}
    client = client_for(server, tls_verify=False)
    assert client.send(SENDER, ["a@example.com"], MESSAGE, timings).ok

    assert server.sessions[0].tls and str(client.banner) == "220 fake.test ESMTP"
    assert list(timings)[:4] == ["connect", "tls", "banner", "helo"]


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_a_certificate_the_client_trusts_is_verified_and_the_message_goes(serve, client_for, tls):
    server = serve(tls=tls, ehlo=ehlo_offering("STARTTLS"))
    trusting = ssl.create_default_context(cadata=certificate_pem())  # verification on, host name included
    client = client_for(server, starttls=tls == "starttls", tls_context=trusting)
    assert client.send(SENDER, ["a@example.com"], MESSAGE).ok
    assert server.sessions[0].tls and server.sessions[0].messages == [MESSAGE]


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_a_self_signed_certificate_fails_verification_by_default(serve, client_for, tls):
    server = serve(tls=tls, ehlo=ehlo_offering("STARTTLS"))
    client = client_for(server, starttls=tls == "starttls")
    with pytest.raises(SMTPConnectError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (repr(caught.value), caught.value.phase) == ("connect failed at TLS", "tls")
    assert "certificate verify failed" in str(caught.value)
    assert not client.connected
    assert server.ended_session().messages == []


def test_auth_plain_sends_one_line(serve, client_for):
    server = serve(ehlo=ehlo_offering("AUTH PLAIN LOGIN"))
    client_for(server, username="alice", password="wonder").send(SENDER, ["a@example.com"], MESSAGE)

    session = server.sessions[0]
    assert session.commands[1] == b"AUTH PLAIN " + base64.b64encode(b"\0alice\0wonder")
    assert session.verbs()[2] == b"MAIL"


def test_auth_login_answers_each_challenge(serve, client_for):
    server = serve(auth_script(b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n", b"235 2.7.0 Ok\r\n"),
                   ehlo=ehlo_offering("AUTH PLAIN LOGIN"))
    client_for(server, username="alice", password="wonder", auth_mechanism="login").send(
        SENDER, ["a@example.com"], MESSAGE)

    assert server.sessions[0].commands[1:4] == [b"AUTH LOGIN", base64.b64encode(b"alice"), base64.b64encode(b"wonder")]


def test_auth_cram_md5_answers_with_the_keyed_digest(serve, client_for):
    server = serve(auth_script(b"334 " + base64.b64encode(CHALLENGE) + b"\r\n", b"235 2.7.0 Ok\r\n"),
                   ehlo=ehlo_offering("AUTH CRAM-MD5 PLAIN"))
    client_for(server, username="alice", password="wonder", auth_mechanism="CRAM-MD5").send(
        SENDER, ["a@example.com"], MESSAGE)

    digest = hmac.new(b"wonder", CHALLENGE, hashlib.md5).hexdigest().encode()
    assert server.sessions[0].commands[1:3] == [b"AUTH CRAM-MD5", base64.b64encode(b"alice " + digest)]


def test_refused_credentials_fail_at_auth_and_send_no_transaction(serve, client_for):
    server = serve(auth_script(b"535 5.7.8 Error: authentication failed\r\n"), ehlo=ehlo_offering("AUTH PLAIN"))
    client = client_for(server, username="alice", password="nope")
    with pytest.raises(SMTPReplyError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (repr(caught.value), caught.value.phase) == ("535 5.7.8 at AUTH", "auth")
    assert not client.connected
    assert server.ended_session().verbs() == [b"EHLO", b"AUTH"]


@pytest.mark.parametrize("offered, wanted", [("", None), ("PLAIN", "CRAM-MD5")], ids=["no-auth", "not-that-one"])
def test_auth_not_offered_is_refused_before_sending_credentials(serve, client_for, offered, wanted):
    server = serve(ehlo=ehlo_offering(*([f"AUTH {offered}"] if offered else [])))
    client = client_for(server, username="alice", password="wonder", auth_mechanism=wanted)
    with pytest.raises(SMTPNotSupportedError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.phase, caught.value.extension) == ("auth", wanted or "AUTH")
    assert server.ended_session().verbs() == [b"EHLO"]


def test_starttls_not_offered_names_the_server_and_the_phase(serve, client_for):
    client = client_for(serve(), starttls=True, tls_verify=False)
    with pytest.raises(SMTPNotSupportedError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (str(caught.value), caught.value.phase) == (f"{client.target} does not offer STARTTLS", "starttls")


@pytest.mark.parametrize("reply, error, key", [
    (b"454 4.7.0 TLS not available\r\n", SMTPReplyError, "454 4.7.0 at STARTTLS"),
    (CLOSE, SMTPDisconnected, "connection closed at STARTTLS"),
])
def test_starttls_refused_or_hung_up_on_fails_at_starttls(serve, client_for, reply, error, key):
    server = serve(on(b"STARTTLS", reply), ehlo=ehlo_offering("STARTTLS"))
    client = client_for(server, starttls=True, tls_verify=False)
    with pytest.raises(error) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.phase, repr(caught.value)) == ("starttls", key)
    assert server.ended_session().verbs() == [b"EHLO", b"STARTTLS"]


def test_a_tls_handshake_the_server_never_answers_times_out_at_tls(serve, client_for):
    said_starttls = []

    def ready_then_silent(line, session):  # whatever bytes of the ClientHello make a "line", no answer
        if said_starttls:
            return SILENT
        if line == b"STARTTLS":
            said_starttls.append(line)
            return Split(b"220 2.0.0 Ready to start TLS\r\n")  # not bytes: the fake server stays in clear
        return None

    server = serve(ready_then_silent, ehlo=ehlo_offering("STARTTLS"))
    client = client_for(server, starttls=True, tls_verify=False, timeout=0.2)
    with pytest.raises(SMTPTimeoutError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (str(caught.value), caught.value.phase) == ("TLS handshake timed out after 0.2s", "tls")


def test_starttls_over_a_unix_socket_names_no_server_host(serve, client_for, tmp_path):
    server = serve(tls="starttls", ehlo=ehlo_offering("STARTTLS"), unix_path=str(tmp_path / "smtp.sock"))
    client = client_for(server, starttls=True, tls_verify=False)
    assert client.send(SENDER, ["a@example.com"], MESSAGE).delivered == 1
    assert server.sessions[0].tls


@pytest.mark.parametrize("offered, wanted, tail", [
    ("", None, " offers no AUTH"), ("PLAIN LOGIN", "CRAM-MD5", " offers no CRAM-MD5 (it offers PLAIN LOGIN)"),
], ids=["no-auth", "not-that-one"])
def test_auth_not_offered_says_what_was_wanted_and_what_is_offered(serve, client_for, offered, wanted, tail):
    server = serve(ehlo=ehlo_offering(*([f"AUTH {offered}"] if offered else [])))
    client = client_for(server, username="alice", password="wonder", auth_mechanism=wanted)
    with pytest.raises(SMTPNotSupportedError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert str(caught.value) == f"{client.target}{tail}"


@pytest.mark.parametrize("close_after", [0, 1], ids=["at-auth", "at-the-answer"])
def test_a_server_hanging_up_during_auth_fails_at_auth(serve, client_for, close_after):
    server = serve(auth_script(*[b"334 VXNlcm5hbWU6\r\n"] * close_after, CLOSE), ehlo=ehlo_offering("AUTH LOGIN"))
    client = client_for(server, username="alice", password="wonder", auth_mechanism="login")
    with pytest.raises(SMTPDisconnected) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.phase, repr(caught.value)) == ("auth", "connection closed at AUTH")


def test_a_challenge_past_the_mechanisms_end_is_cancelled_with_a_star(serve, client_for):
    """RFC 4954 4: the client answers "*" to cancel an exchange it cannot go on with."""
    server = serve(auth_script(b"334 \r\n", b"501 5.7.0 Authentication aborted\r\n"), ehlo=ehlo_offering("AUTH PLAIN"))
    client = client_for(server, username="alice", password="wonder")
    with pytest.raises(SMTPReplyError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert repr(caught.value) == "501 5.7.0 at AUTH"
    session = server.ended_session()
    assert session.commands[-1] == b"*"
