"""SmtpClient against a scripted in-process server: pipelining, LMTP, errors, timings.

The server (tests/unit/fake_smtp.py) records every byte it receives and
every reply it sends, so each test checks the conversation on the wire.
"""

from __future__ import annotations

import socket
import time

import pytest

from loadkit.smtp import (
    SMTPConnectError,
    SMTPDisconnected,
    SMTPError,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTransportError,
    stuff_dots,
)
from loadkit.urls import Target, parse_url
from tests.unit import fake_smtp
from tests.unit.fake_smtp import (
    BANNER,
    CLOSE,
    EHLO_PLAIN,
    QUEUED,
    SILENT,
    Hangup,
    Split,
)

MESSAGE = b"Subject: test\r\n\r\nhello\r\n"
SENDER = "from@example.com"
REJECT_USER = b"550 5.1.1 <bad@example.com>: Recipient address rejected: User unknown\r\n"
ENVELOPE_PHASES = {"envelope", "end-of-data"}  # pipelined: MAIL, RCPT and DATA are one round trip
SESSION_PHASES = {"connect", "banner", "helo"}


serve, client_for = fake_smtp.serve, fake_smtp.client_for  # fixtures: a server per test, clients closed after it


def on(verb: bytes, reply, when=lambda line: True):
    """A script that answers `verb` lines matching `when` with `reply`, the rest as usual."""
    def respond(line, session):
        if line.split(b" ", 1)[0].upper() == verb and when(line):
            return reply
        return None
    return respond


def answering(replies: dict[bytes, bytes]):
    """A script that answers each verb in `replies` with its reply, the rest as usual."""
    return lambda line, session: replies.get(line.split(b" ", 1)[0].upper())


def for_bad_recipients(line: bytes) -> bool:
    return b"bad" in line


def delivered_or_refused(client, delivered: bool, refusal: tuple[int, str]) -> None:
    """The next message is delivered, or refused with this (code, phase)."""
    if delivered:
        assert client.send(SENDER, ["a@example.com"], MESSAGE).delivered == 1
    else:
        with pytest.raises(SMTPReplyError) as caught:
            client.send(SENDER, ["a@example.com"], MESSAGE)
        assert (caught.value.code, caught.value.phase) == refusal


def refused_yet_asked_for_content(serve, client_for, replies: dict[bytes, bytes], recipient: str):
    """A broken server answers 354 to DATA after refusing the envelope: the client raises and hangs up.

    Returns the error raised and the server's session, which got no content.
    """
    server = serve(answering(replies))
    client = client_for(server)
    with pytest.raises(SMTPReplyError) as caught:
        client.send(SENDER, [recipient], MESSAGE)
    assert not client.connected
    session = server.ended_session()
    assert session.received.endswith(b"DATA\r\n")  # hung up instead of sending content
    return caught.value, session


# -- pipelining -----------------------------------------------------------


def test_pipelining_sends_mail_every_rcpt_and_data_in_one_write_then_content_in_a_second(serve, client_for):
    server = serve(reply_delay=0.02)  # anything sent before a reply arrives is seen before it
    delivery = client_for(server).send(SENDER, ["a@example.com", "b@example.com"], MESSAGE)

    assert delivery.ok and delivery.delivered == 2
    exchanges = server.sessions[0].exchanges()
    assert exchanges[0] == (b"", BANNER)
    assert exchanges[1][0] == b"EHLO loadkit.test\r\n"
    envelope = (b"MAIL FROM:<from@example.com> SIZE=%d\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
                b"DATA\r\n" % len(MESSAGE))  # the server offers SIZE: the message declares its size
    assert exchanges[2] == (envelope, b"250 2.1.0 Ok\r\n")
    assert [received for received, _ in exchanges[3:6]] == [b"", b"", b""]  # nothing new came before these replies
    assert exchanges[6] == (MESSAGE + b".\r\n", QUEUED)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_replies_are_matched_to_their_commands_in_order(serve, client_for, pipelining):
    # Every reply arrives split in two writes, so a client that miscounts lines would shift them.
    def respond(line, session):
        verb = line.split(b" ", 1)[0]
        if verb == b"RCPT" and b"r2@" in line:
            return Split(REJECT_USER[:10], REJECT_USER[10:])
        if verb == b"RCPT" and b"r4@" in line:
            return Split(b"45", b"2 4.2.2 Mailbox full\r\n")
        if verb in (b"MAIL", b"RCPT", b"DATA"):
            reply = {b"MAIL": b"250 2.1.0 Ok\r\n", b"RCPT": b"250 2.1.5 Ok\r\n",
                     b"DATA": b"354 go ahead\r\n"}[verb]
            return Split(reply[:2], reply[2:])
        return None

    server = serve(respond)
    recipients = ["r1@example.com", "r2@example.com", "r3@example.com", "r4@example.com"]
    delivery = client_for(server, pipelining=pipelining).send(SENDER, recipients, MESSAGE)

    assert delivery.accepted == ["r1@example.com", "r3@example.com"]
    assert [(e.recipient, e.code, e.phase) for e in delivery.errors] == [
        ("r2@example.com", 550, "rcpt"), ("r4@example.com", 452, "rcpt")]
    assert delivery.delivered == 2
    assert server.sessions[0].messages == [MESSAGE]


@pytest.mark.parametrize("ehlo, pipelining", [(EHLO_PLAIN, True), (None, False)],
                         ids=["not-advertised", "advertised-but-turned-off"])
def test_without_pipelining_each_command_waits_for_its_reply(serve, client_for, ehlo, pipelining):
    options = {"ehlo": ehlo} if ehlo else {}
    server = serve(reply_delay=0.02, **options)
    delivery = client_for(server, pipelining=pipelining).send(SENDER, ["a@example.com", "b@example.com"], MESSAGE)

    assert delivery.delivered == 2
    received_before_each_reply = [received for received, _ in server.sessions[0].exchanges()[1:]]
    assert received_before_each_reply == [
        b"EHLO loadkit.test\r\n",
        b"MAIL FROM:<from@example.com> SIZE=%d\r\n" % len(MESSAGE),
        b"RCPT TO:<a@example.com>\r\n",
        b"RCPT TO:<b@example.com>\r\n",
        b"DATA\r\n",
        MESSAGE + b".\r\n",
    ]


# -- envelope -------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_partial_recipient_refusal_delivers_to_the_others(serve, client_for, pipelining):
    server = serve(on(b"RCPT", REJECT_USER, for_bad_recipients))
    delivery = client_for(server, pipelining=pipelining).send(
        SENDER, ["a@example.com", "bad@example.com", "c@example.com"], MESSAGE)

    assert delivery.accepted == ["a@example.com", "c@example.com"]
    assert delivery.delivered == 2
    assert not delivery.ok
    [error] = delivery.errors
    assert (error.recipient, error.code, error.enhanced_code, error.phase) == ("bad@example.com", 550, "5.1.1", "rcpt")
    assert delivery.reply.code == 250
    assert server.sessions[0].messages == [MESSAGE]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_all_recipients_refused_raises_at_rcpt_and_sends_no_content(serve, client_for, pipelining):
    server = serve(on(b"RCPT", REJECT_USER))
    client = client_for(server, pipelining=pipelining)
    with pytest.raises(SMTPReplyError) as caught:
        client.send(SENDER, ["bad@example.com", "bad2@example.com"], MESSAGE)

    error = caught.value
    assert (error.phase, error.code, error.recipient) == ("rcpt", 550, "bad@example.com")
    assert repr(error) == "550 5.1.1 at RCPT"
    client.close()
    session = server.ended_session()
    assert session.messages == []
    assert b"354" not in b"".join(reply for _, reply in session.exchanges())
    if not pipelining:
        assert b"DATA" not in session.verbs()  # nothing to send it for


def test_server_that_asks_for_content_after_a_refused_envelope_gets_none(serve, client_for):
    # A broken server answers 354 to a pipelined DATA although no recipient was accepted.
    replies = {b"RCPT": REJECT_USER, b"DATA": b"354 send it anyway\r\n"}
    error, session = refused_yet_asked_for_content(serve, client_for, replies, "bad@example.com")
    assert error.phase == "rcpt"
    assert session.exchanges()[-1][1] == b"354 send it anyway\r\n"


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_no_recipients_is_a_protocol_error_and_sends_no_content(serve, client_for, pipelining):
    server = serve()
    client = client_for(server, pipelining=pipelining)
    with pytest.raises(SMTPProtocolError) as caught:
        client.send(SENDER, [], MESSAGE)

    assert caught.value.phase == "rcpt"
    assert server.sessions[0].messages == []
    assert client.send(SENDER, ["a@example.com"], MESSAGE).ok  # the session is still usable


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_refused_sender_raises_at_mail(serve, client_for, pipelining):
    server = serve(on(b"MAIL", b"553 5.1.8 <from@example.com>: Sender address rejected\r\n"))
    with pytest.raises(SMTPReplyError) as caught:
        client_for(server, pipelining=pipelining).send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.phase, caught.value.code, caught.value.recipient) == ("mail", 553, None)
    assert repr(caught.value) == "553 5.1.8 at MAIL"
    assert server.sessions[0].messages == []


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_refused_data_raises_at_data(serve, client_for, pipelining):
    server = serve(on(b"DATA", b"451 4.3.0 Error: queue file write error\r\n"))
    with pytest.raises(SMTPReplyError) as caught:
        client_for(server, pipelining=pipelining).send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.phase, caught.value.code) == ("data", 451)
    assert repr(caught.value) == "451 4.3.0 at DATA"


def test_refused_message_raises_at_end_of_data(serve, client_for):
    server = serve(on(b".", b"554 5.7.1 Spam message rejected\r\n"))
    with pytest.raises(SMTPReplyError) as caught:
        client_for(server).send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.phase, caught.value.code, repr(caught.value)) == (
        "end-of-data", 554, "554 5.7.1 at END-OF-DATA")


# -- LMTP -----------------------------------------------------------------


def test_lmtp_reads_one_reply_per_recipient_after_the_dot(serve, client_for):
    def respond(line, session):
        if line == b".":  # one write per reply, the failing one in the middle
            return Split(b"250 2.0.0 <r1> Ok\r\n", b"550 5.1.1 <r2> User unknown\r\n", b"250 2.0.0 <r3> Ok\r\n")
        return None

    server = serve(respond)
    client = client_for(server, "lmtp")
    recipients = ["r1@example.com", "r2@example.com", "r3@example.com"]
    delivery = client.send(SENDER, recipients, MESSAGE)

    assert server.sessions[0].commands[0] == b"LHLO loadkit.test"
    assert delivery.accepted == recipients
    assert delivery.delivered == 2
    [error] = delivery.errors
    assert (error.phase, error.recipient, error.code, repr(error)) == (
        "end-of-data", "r2@example.com", 550, "550 5.1.1 at END-OF-DATA")
    assert "for <r2@example.com>" in str(error)

    # Exactly three replies were read: the next transaction on this session lines up.
    assert client.send(SENDER, ["r4@example.com"], MESSAGE).delivered == 1
    assert b"RSET" not in server.sessions[0].verbs()


def test_lmtp_expects_replies_only_for_recipients_accepted_at_rcpt(serve, client_for):
    def respond(line, session):
        if line.startswith(b"RCPT") and b"bad" in line:
            return REJECT_USER
        if line == b".":
            assert session.accepted == [b"a@example.com", b"c@example.com"]
            return b"250 2.0.0 <a> Ok\r\n452 4.2.2 <c> Mailbox full\r\n"
        return None

    server = serve(respond)
    delivery = client_for(server, "lmtp").send(SENDER, ["a@example.com", "bad@example.com", "c@example.com"], MESSAGE)

    assert delivery.accepted == ["a@example.com", "c@example.com"]
    assert delivery.delivered == 1
    assert [(e.phase, e.recipient, e.code) for e in delivery.errors] == [
        ("rcpt", "bad@example.com", 550), ("end-of-data", "c@example.com", 452)]


def test_lmtp_raises_when_every_recipient_fails_after_the_dot(serve, client_for):
    server = serve(on(b".", b"452 4.2.2 <a> Mailbox full\r\n550 5.2.1 <b> Mailbox disabled\r\n"))
    with pytest.raises(SMTPReplyError) as caught:
        client_for(server, "lmtp").send(SENDER, ["a@example.com", "b@example.com"], MESSAGE)

    assert caught.value.phase == "end-of-data"
    assert (caught.value.recipient, caught.value.code) in {("a@example.com", 452), ("b@example.com", 550)}


def test_lmtp_refused_lhlo_is_an_error_without_helo_fallback(serve, client_for):
    server = serve(on(b"LHLO", b"500 5.5.1 Unknown command\r\n"))
    with pytest.raises(SMTPReplyError) as caught:
        client_for(server, "lmtp").send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.phase, caught.value.code, repr(caught.value)) == ("helo", 500, "500 5.5.1 at HELO")
    assert server.sessions[0].verbs() == [b"LHLO"]


def test_lmtp_over_a_unix_socket_end_to_end(serve, client_for, tmp_path):
    path = str(tmp_path / "lmtp.sock")
    server = serve(unix_path=path)
    client = client_for(parse_url(f"lmtp+unix://{path}"))
    delivery = client.send(SENDER, ["a@example.com", "b@example.com"], MESSAGE, quit=True)

    assert (delivery.delivered, delivery.errors) == (2, [])
    session = server.ended_session()
    assert session.verbs() == [b"LHLO", b"MAIL", b"RCPT", b"RCPT", b"DATA", b".", b"QUIT"]
    assert session.messages == [MESSAGE]


# -- content --------------------------------------------------------------


@pytest.mark.parametrize("message, on_the_wire", [
    (b".starts with a dot\r\nmiddle\r\n..two dots\r\n.\r\nend\r\n",
     b"..starts with a dot\r\nmiddle\r\n...two dots\r\n..\r\nend\r\n"),
    (b"no final line break", b"no final line break\r\n"),
    (b"ends on a dot line\r\n.", b"ends on a dot line\r\n..\r\n"),
    (b"", b""),
], ids=["dot-lines", "no-final-crlf", "last-line-a-dot", "empty"])
def test_content_is_dot_stuffed_and_ends_with_crlf_on_the_wire(serve, client_for, message, on_the_wire):
    server = serve()
    client_for(server).send(SENDER, ["a@example.com"], message)

    session = server.sessions[0]
    assert session.messages == [on_the_wire]
    assert session.exchanges()[-1][0] == on_the_wire + b".\r\n"  # the dot line follows right after


def test_content_said_to_be_ready_goes_out_as_it_is(serve, client_for):
    server = serve()
    message = b"Subject: ready\r\n\r\nno line starts with a dot\r\n"
    client_for(server).send(SENDER, ["a@example.com"], message, as_is=True)

    assert server.sessions[0].exchanges()[-1][0] == message + b".\r\n"


def test_content_said_to_be_ready_is_not_stuffed_again(serve, client_for):
    server = serve()
    stuffed = b"Subject: ready\r\n\r\n..a line that began with a dot\r\n"
    client_for(server).send(SENDER, ["a@example.com"], stuffed, as_is=True)

    assert server.sessions[0].exchanges()[-1][0] == stuffed + b".\r\n"


@pytest.mark.parametrize("message, stuffed", [
    (b"plain\r\n", b"plain\r\n"),
    (b".lead\r\n", b"..lead\r\n"),
    (b"a\r\n.b\r\n.\r\n", b"a\r\n..b\r\n..\r\n"),
    (b"a\r\n..\r\n", b"a\r\n...\r\n"),
    (b"dot.in.the.middle\r\n", b"dot.in.the.middle\r\n"),
    (b"no crlf", b"no crlf\r\n"),
    (b".", b"..\r\n"),
    (b"", b""),
])
def test_stuff_dots(message, stuffed):
    assert stuff_dots(message) == stuffed


# -- RSET -----------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_rset_is_sent_only_before_a_transaction_that_follows_a_failed_one(serve, client_for, pipelining):
    server = serve(on(b"RCPT", REJECT_USER, for_bad_recipients))
    client = client_for(server, pipelining=pipelining)
    assert client.send(SENDER, ["a@example.com"], MESSAGE).ok
    with pytest.raises(SMTPReplyError):
        client.send(SENDER, ["bad@example.com"], MESSAGE)
    assert client.send(SENDER, ["a@example.com"], MESSAGE).ok
    assert client.send(SENDER, ["a@example.com"], MESSAGE).ok

    verbs = server.sessions[0].verbs()
    assert verbs.count(b"RSET") == 1
    after_failure = verbs.index(b"RSET")
    assert verbs[after_failure - 1] == (b"DATA" if pipelining else b"RCPT")  # the failed transaction's last command
    assert verbs[after_failure + 1] == b"MAIL"
    assert len(server.sessions) == 1
    assert len(server.sessions[0].messages) == 3


def test_rset_follows_a_refused_sender(serve, client_for):
    refuse_once = iter([b"553 5.1.8 Sender rejected\r\n"])
    server = serve(lambda line, session: next(refuse_once, None) if line.startswith(b"MAIL") else None)
    client = client_for(server)
    with pytest.raises(SMTPReplyError):
        client.send(SENDER, ["a@example.com"], MESSAGE)
    assert client.send(SENDER, ["a@example.com"], MESSAGE).ok

    verbs = server.sessions[0].verbs()
    assert verbs[verbs.index(b"RSET") + 1] == b"MAIL"


@pytest.mark.parametrize("first_outcome", ["partly-refused-recipients", "refused-at-end-of-data"])
def test_no_rset_when_the_previous_transaction_was_completed(serve, client_for, first_outcome):
    # A partial refusal still delivers; a refusal after the dot ends the transaction too.
    refuse_once = iter([b"554 5.7.1 Rejected\r\n"])
    def respond(line, session):
        if line.startswith(b"RCPT") and b"bad" in line:
            return REJECT_USER
        if line == b"." and first_outcome == "refused-at-end-of-data":
            return next(refuse_once, None)
        return None

    server = serve(respond)
    client = client_for(server)
    try:
        client.send(SENDER, ["a@example.com", "bad@example.com"], MESSAGE)
    except SMTPReplyError as error:
        assert error.phase == "end-of-data"
    assert client.send(SENDER, ["a@example.com"], MESSAGE).ok
    assert b"RSET" not in server.sessions[0].verbs()


# -- QUIT -----------------------------------------------------------------


def test_quit_is_pipelined_behind_the_dot(serve, client_for):
    server = serve()
    client = client_for(server)
    timings = {}
    delivery = client.send(SENDER, ["a@example.com"], MESSAGE, timings=timings, quit=True)

    assert delivery.delivered == 1
    assert not client.connected
    assert "quit" in timings
    exchanges = server.ended_session().exchanges()
    assert exchanges[-2] == (MESSAGE + b".\r\nQUIT\r\n", QUEUED)
    assert exchanges[-1] == (b"", b"221 2.0.0 Bye\r\n")


def test_quit_without_pipelining_waits_for_the_end_of_data_reply(serve, client_for):
    server = serve(ehlo=EHLO_PLAIN)
    client = client_for(server)
    assert client.send(SENDER, ["a@example.com"], MESSAGE, quit=True).delivered == 1

    assert not client.connected
    exchanges = server.ended_session().exchanges()
    assert exchanges[-2] == (MESSAGE + b".\r\n", QUEUED)
    assert exchanges[-1] == (b"QUIT\r\n", b"221 2.0.0 Bye\r\n")


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
@pytest.mark.parametrize("instead_of_221", [CLOSE, SILENT, b"garbage\r\n"], ids=["hang-up", "silence", "garbage"])
def test_a_server_that_does_not_say_221_does_not_fail_the_delivery(serve, client_for, pipelining, instead_of_221):
    server = serve(on(b"QUIT", instead_of_221))
    client = client_for(server, pipelining=pipelining, timeout=0.1)
    delivery = client.send(SENDER, ["a@example.com"], MESSAGE, quit=True)

    assert (delivery.ok, delivery.delivered) == (True, 1)
    assert not client.connected
    assert server.ended_session().verbs()[-2:] == [b".", b"QUIT"]


def test_quit_ends_an_open_session_politely(serve, client_for):
    server = serve()
    client = client_for(server)
    client.send(SENDER, ["a@example.com"], MESSAGE)
    timings = {}
    client.quit(timings)

    assert not client.connected
    assert timings["quit"] >= 0
    assert server.ended_session().exchanges()[-1] == (b"QUIT\r\n", b"221 2.0.0 Bye\r\n")
    client.quit()  # without a session: nothing to do, no error


# -- greeting -------------------------------------------------------------


def test_ehlo_capabilities_are_parsed(serve, client_for):
    server = serve(ehlo=b"250-fake.test\r\n250-pipelining\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n")
    client = client_for(server)
    client.connect()

    assert client.capabilities == {"PIPELINING": "", "SIZE": "10240000", "8BITMIME": ""}
    assert str(client.banner) == "220 fake.test ESMTP"


def test_capabilities_follow_what_the_server_says_on_each_connection(serve, client_for):
    server = serve(ehlo=b"250-fake.test\r\n250 SIZE 1000\r\n")
    client = client_for(server)
    client.connect()
    client.connect()  # the same reply again
    assert client.capabilities == {"SIZE": "1000"}

    server.ehlo = b"250-fake.test\r\n250-PIPELINING\r\n250 SIZE 2000\r\n"
    client.connect()

    assert client.capabilities == {"PIPELINING": "", "SIZE": "2000"}


def test_refused_ehlo_falls_back_to_helo_without_pipelining(serve, client_for):
    server = serve(on(b"EHLO", b"502 5.5.2 Error: command not recognized\r\n"), reply_delay=0.01)
    client = client_for(server)
    delivery = client.send(SENDER, ["a@example.com", "b@example.com"], MESSAGE)

    assert delivery.delivered == 2
    assert client.capabilities == {}
    session = server.sessions[0]
    assert session.verbs() == [b"EHLO", b"HELO", b"MAIL", b"RCPT", b"RCPT", b"DATA", b"."]
    assert session.commands[1] == b"HELO loadkit.test"
    assert session.exchanges()[3][0] == b"MAIL FROM:<from@example.com>\r\n"  # one by one: HELO has no PIPELINING


def test_temporary_ehlo_failure_is_an_error_not_a_helo_fallback(serve, client_for):
    server = serve(on(b"EHLO", Hangup(b"421 4.3.2 Service shutting down\r\n")))
    client = client_for(server)
    with pytest.raises(SMTPReplyError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.phase, caught.value.code) == ("helo", 421)
    assert not client.connected
    assert server.ended_session().verbs() == [b"EHLO"]


def test_helo_name_is_configurable(serve, client_for):
    server = serve()
    client_for(server, helo_name="client.example").connect()
    assert server.sessions[0].commands == [b"EHLO client.example"]


# -- errors ---------------------------------------------------------------


def test_error_tree():
    for transport in (SMTPConnectError, SMTPTimeoutError, SMTPDisconnected):
        assert issubclass(transport, SMTPTransportError)
    for error in (SMTPTransportError, SMTPProtocolError, SMTPReplyError):
        assert issubclass(error, SMTPError)
    assert not issubclass(SMTPReplyError, SMTPTransportError)


def test_connection_refused_is_a_connect_error(client_for):
    with socket.socket() as bound_but_not_listening:  # port taken by us, so nobody else can listen there
        bound_but_not_listening.bind(("127.0.0.1", 0))
        port = bound_but_not_listening.getsockname()[1]
        client = client_for(Target("smtp", host="127.0.0.1", port=port))
        with pytest.raises(SMTPConnectError) as caught:
            client.send(SENDER, ["a@example.com"], MESSAGE)

    assert caught.value.phase == "connect"
    assert repr(caught.value) == "connect failed at CONNECT"
    assert f"smtp://127.0.0.1:{port}" in str(caught.value)
    assert "refused" in str(caught.value).lower()
    assert not client.connected


def test_unresolvable_host_is_a_connect_error(client_for):
    client = client_for(Target("smtp", host="no-such-host.invalid", port=25))
    with pytest.raises(SMTPConnectError) as caught:
        client.connect()

    assert (caught.value.phase, repr(caught.value)) == ("connect", "connect failed at CONNECT")
    assert "no-such-host.invalid" in str(caught.value)


def test_missing_unix_socket_is_a_connect_error(client_for, tmp_path):
    client = client_for(Target("lmtp", path=str(tmp_path / "nothing-here.sock")))
    with pytest.raises(SMTPConnectError) as caught:
        client.connect()
    assert "nothing-here.sock" in str(caught.value)


@pytest.mark.parametrize("silent_at, phase, key", [
    ("banner", "banner", "timeout at BANNER"),
    ("EHLO", "helo", "timeout at HELO"),
    ("RCPT", "rcpt", "timeout at RCPT"),
    (".", "end-of-data", "timeout at END-OF-DATA"),
])
def test_silent_server_times_out_in_the_right_phase(serve, client_for, silent_at, phase, key):
    server = serve(on(silent_at.encode(), SILENT), banner=SILENT if silent_at == "banner" else BANNER)
    client = client_for(server, timeout=0.1)
    start = time.monotonic()
    with pytest.raises(SMTPTimeoutError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert time.monotonic() - start < 1.0
    assert (caught.value.phase, repr(caught.value)) == (phase, key)
    assert "0.1" in str(caught.value)
    assert not client.connected


@pytest.mark.parametrize("close_at, pipelining, phase", [
    ("banner", True, "banner"),
    ("MAIL", False, "mail"),
    ("RCPT", False, "rcpt"),
    ("DATA", True, "data"),
    (".", True, "end-of-data"),
])
def test_server_closing_the_connection_is_a_disconnect(serve, client_for, close_at, pipelining, phase):
    server = serve(on(close_at.encode(), CLOSE), banner=CLOSE if close_at == "banner" else BANNER)
    client = client_for(server, pipelining=pipelining)
    with pytest.raises(SMTPDisconnected) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert caught.value.phase == phase
    assert repr(caught.value) == f"connection closed at {phase.upper()}"
    assert not client.connected


def test_the_next_send_after_a_transport_error_opens_a_new_session(serve, client_for):
    def drop_first_session(line, session):
        return CLOSE if line.startswith(b"RCPT") and session.index == 0 else None
    server = serve(drop_first_session)
    client = client_for(server)
    with pytest.raises(SMTPDisconnected):
        client.send(SENDER, ["a@example.com"], MESSAGE)
    timings = {}
    assert client.send(SENDER, ["a@example.com"], MESSAGE, timings=timings).delivered == 1

    assert len(server.sessions) == 2
    assert SESSION_PHASES <= set(timings)
    assert server.sessions[1].verbs()[0] == b"EHLO"


@pytest.mark.parametrize("where, pipelining, phase", [
    ("banner", True, "banner"),
    ("RCPT", False, "rcpt"),
    ("DATA", False, "data"),
    (".", True, "end-of-data"),
])
def test_421_closes_the_client(serve, client_for, where, pipelining, phase):
    shutting_down = Hangup(b"421 4.3.2 Service shutting down\r\n")
    server = serve(on(where.encode(), shutting_down), banner=shutting_down if where == "banner" else BANNER)
    client = client_for(server, pipelining=pipelining)
    with pytest.raises(SMTPReplyError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert (caught.value.code, caught.value.phase) == (421, phase)
    assert repr(caught.value) == f"421 4.3.2 at {phase.upper()}"
    assert not client.connected


def test_reply_error_str_has_the_server_text_and_repr_is_the_grouping_key(serve, client_for):
    server = serve(on(b"RCPT", REJECT_USER, for_bad_recipients))
    delivery = client_for(server).send(SENDER, ["a@example.com", "bad@example.com"], MESSAGE)
    [error] = delivery.errors

    assert repr(error) == "550 5.1.1 at RCPT"
    assert str(error) == ("550 5.1.1 <bad@example.com>: Recipient address rejected: User unknown"
                          " at RCPT for <bad@example.com>")
    assert error.text == "5.1.1 <bad@example.com>: Recipient address rejected: User unknown"


def test_reply_error_without_enhanced_code_has_a_short_key(serve, client_for):
    server = serve(on(b"MAIL", b"452 too many connections\r\n"))
    with pytest.raises(SMTPReplyError) as caught:
        client_for(server).send(SENDER, ["a@example.com"], MESSAGE)
    assert (repr(caught.value), caught.value.enhanced_code) == ("452 at MAIL", None)
    assert "too many connections" in str(caught.value)


# -- timings --------------------------------------------------------------


def test_timings_cover_every_phase_and_session_phases_only_on_a_new_connection(serve, client_for):
    server = serve()
    client = client_for(server)

    first, second, last = {}, {}, {}
    client.send(SENDER, ["a@example.com"], MESSAGE, timings=first)
    client.send(SENDER, ["a@example.com"], MESSAGE, timings=second)
    client.send(SENDER, ["a@example.com"], MESSAGE, timings=last, quit=True)

    assert set(first) == SESSION_PHASES | ENVELOPE_PHASES
    assert set(second) == ENVELOPE_PHASES
    assert set(last) == ENVELOPE_PHASES | {"quit"}
    for timings in (first, second, last):
        assert all(isinstance(ms, float) and 0 <= ms < 1000 for ms in timings.values()), timings
    assert len(server.sessions) == 1


def test_timings_measure_where_the_server_is_slow(serve, client_for):
    def slow_end_of_data(line, session):
        if line == b".":
            time.sleep(0.1)
        return None

    timings = {}
    client_for(serve(slow_end_of_data)).send(SENDER, ["a@example.com"], MESSAGE, timings=timings)

    assert timings["end-of-data"] >= 90
    assert max(timings, key=timings.get) == "end-of-data", timings


# -- known bugs -----------------------------------------------------------


@pytest.mark.parametrize("protocol, where, reply", [
    ("smtp", "banner", b"554 5.7.1 No SMTP service here\r\n"),
    ("smtp", "EHLO", b"451 4.3.0 Try again later\r\n"),
    ("lmtp", "LHLO", b"550 5.5.1 Go away\r\n"),
])
def test_a_failed_greeting_leaves_no_half_open_session(serve, client_for, protocol, where, reply):
    def first_session_only(session):
        return reply if where == "banner" and session.index == 0 else BANNER
    server = serve(lambda line, session: reply if line.startswith(where.encode()) and session.index == 0 else None,
                   banner=first_session_only)
    client = client_for(server, protocol)
    with pytest.raises(SMTPReplyError):
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert not client.connected
    assert client.send(SENDER, ["a@example.com"], MESSAGE).delivered == 1
    assert server.sessions[1].verbs()[0] in (b"EHLO", b"LHLO")


@pytest.mark.parametrize("protocol, refusal", [
    ("smtp", b"554 5.7.1 Spam message rejected\r\n"),
    ("lmtp", b"552 5.2.2 <a> Mailbox full\r\n"),
])
def test_quit_true_ends_the_session_even_when_the_message_is_refused(serve, client_for, protocol, refusal):
    server = serve(lambda line, session: refusal if line == b"." and session.index == 0 else None)
    client = client_for(server, protocol)
    with pytest.raises(SMTPReplyError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE, quit=True)
    assert caught.value.phase == "end-of-data"

    assert not client.connected
    assert client.send(SENDER, ["a@example.com"], MESSAGE).delivered == 1


def test_pipelined_421_then_hang_up_is_reported_as_the_421(serve, client_for):
    server = serve(on(b"MAIL", Hangup(b"421 4.7.0 Too many errors\r\n")))
    client = client_for(server)
    with pytest.raises(SMTPError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)

    assert not client.connected
    assert repr(caught.value) == "421 4.7.0 at MAIL"


# -- reply classes, phases of every round trip ----------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_any_2yz_reply_accepts_a_recipient_and_3yz_does_not(serve, client_for, pipelining):
    """RFC 5321 4.2.1: the first digit decides; 200 and 299 are positive completions, 300 is not."""
    codes = {b"<a200@example.com>": b"200 2.1.5 Ok\r\n", b"<a299@example.com>": b"299 2.1.5 Ok\r\n",
             b"<a300@example.com>": b"300 odd\r\n"}

    def respond(line, session):
        return codes.get(line.partition(b":")[2]) if line.startswith(b"RCPT") else None

    server = serve(respond)
    delivery = client_for(server, pipelining=pipelining).send(
        SENDER, ["a200@example.com", "a300@example.com", "a299@example.com"], MESSAGE
    )
    assert (delivery.delivered, delivery.accepted) == (2, ["a200@example.com", "a299@example.com"])
    assert [(e.recipient, e.code, e.phase) for e in delivery.errors] == [("a300@example.com", 300, "rcpt")]
    with pytest.raises(SMTPReplyError) as caught:
        client_for(server, pipelining=pipelining).send(SENDER, ["a300@example.com"], MESSAGE)
    assert (caught.value.code, caught.value.phase) == (300, "rcpt")


@pytest.mark.parametrize("reply, ok", [(b"200 2.0.0 Ok\r\n", True), (b"299 2.0.0 Ok\r\n", True), (b"300 odd\r\n", False)])
def test_rset_and_end_of_data_replies_are_judged_by_their_class(serve, client_for, reply, ok):
    first = iter([REJECT_USER])

    def respond(line, session):
        if line.startswith(b"RCPT"):
            return next(first, None)  # the first transaction fails: the next one begins with RSET
        return reply if line in (b"RSET", b".") else None

    client = client_for(serve(respond), pipelining=False)
    with pytest.raises(SMTPReplyError):
        client.send(SENDER, ["bad@example.com"], MESSAGE)
    delivered_or_refused(client, ok, (300, "rset"))


@pytest.mark.parametrize("reply, error, key", [
    (b"500 5.5.1 Error\r\n", SMTPReplyError, "500 5.5.1 at RSET"),
    (CLOSE, SMTPDisconnected, "connection closed at RSET"),
])
def test_a_refused_or_hung_up_rset_fails_at_rset(serve, client_for, reply, error, key):
    first = iter([REJECT_USER])
    server = serve(lambda line, session: next(first, None) if line.startswith(b"RCPT") else
                   reply if line == b"RSET" else None)
    client = client_for(server)
    with pytest.raises(SMTPReplyError):
        client.send(SENDER, ["bad@example.com"], MESSAGE)
    with pytest.raises(error) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)
    assert repr(caught.value) == key


@pytest.mark.parametrize("close_at, pipelining, phase", [
    ("MAIL", True, "mail"),
    ("DATA", False, "data"),
])
def test_a_hang_up_is_reported_in_the_phase_of_the_reply_awaited(serve, client_for, close_at, pipelining, phase):
    server = serve(on(close_at.encode(), CLOSE))
    with pytest.raises(SMTPDisconnected) as caught:
        client_for(server, pipelining=pipelining).send(SENDER, ["a@example.com"], MESSAGE)
    assert (caught.value.phase, repr(caught.value)) == (phase, f"connection closed at {phase.upper()}")


def test_lmtp_hang_up_after_the_dot_is_at_end_of_data(serve, client_for):
    server = serve(on(b".", CLOSE))
    with pytest.raises(SMTPDisconnected) as caught:
        client_for(server, "lmtp").send(SENDER, ["a@example.com", "b@example.com"], MESSAGE)
    assert (caught.value.phase, repr(caught.value)) == ("end-of-data", "connection closed at END-OF-DATA")


def test_a_refused_sender_with_accepted_recipients_and_354_gets_no_content(serve, client_for):
    replies = {  # a broken server: refuses MAIL, then accepts RCPT and DATA all the same
        b"MAIL": b"553 5.1.8 Sender address rejected\r\n", b"RCPT": b"250 2.1.5 Ok\r\n", b"DATA": b"354 go ahead\r\n",
    }
    error, _session = refused_yet_asked_for_content(serve, client_for, replies, "a@example.com")
    assert repr(error) == "553 5.1.8 at MAIL"


def test_no_recipients_says_why(serve, client_for):
    with pytest.raises(SMTPProtocolError) as caught:
        client_for(serve()).send(SENDER, [], MESSAGE)
    assert str(caught.value) == "a transaction needs at least one recipient"


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_200_is_enough_for_the_one_recipient_accepted(serve, client_for, pipelining):
    refuse = {b"<b@example.com>": b"300 odd\r\n", b"<a@example.com>": b"200 2.1.5 Ok\r\n"}
    server = serve(lambda line, session: refuse.get(line.partition(b":")[2]) if line.startswith(b"RCPT") else None)
    delivery = client_for(server, pipelining=pipelining).send(SENDER, ["b@example.com", "a@example.com"], MESSAGE)
    assert (delivery.delivered, delivery.accepted) == (1, ["a@example.com"])
    assert server.sessions[0].messages == [MESSAGE]


def test_a_3yz_recipient_reply_then_354_is_a_failed_envelope_and_the_client_hangs_up(serve, client_for):
    server = serve(on(b"RCPT", b"300 odd\r\n"))  # the scripted server counts 3yz as accepted and answers DATA 354
    client = client_for(server)
    with pytest.raises(SMTPReplyError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)
    assert (caught.value.code, caught.value.phase) == (300, "rcpt")
    assert not client.connected
    assert server.ended_session().received.endswith(b"DATA\r\n")


@pytest.mark.parametrize("reply, delivered", [(b"200 2.0.0 Ok\r\n", 1), (b"299 2.0.0 Ok\r\n", 1), (b"300 odd\r\n", 0)])
def test_the_end_of_data_reply_is_judged_by_its_class(serve, client_for, reply, delivered):
    server = serve(on(b".", reply))
    client = client_for(server)
    delivered_or_refused(client, delivered, (300, "end-of-data"))


def test_lmtp_per_recipient_replies_are_judged_by_their_class(serve, client_for):
    server = serve(on(b".", b"200 2.0.0 <a> Ok\r\n300 odd\r\n299 2.0.0 <c> Ok\r\n"))
    delivery = client_for(server, "lmtp").send(SENDER, ["a@example.com", "b@example.com", "c@example.com"], MESSAGE)
    assert delivery.delivered == 2
    assert [(e.recipient, e.code, e.phase) for e in delivery.errors] == [("b@example.com", 300, "end-of-data")]


@pytest.mark.parametrize("ehlo_reply, falls_back", [
    (b"500 5.5.1 Error: unknown\r\n", True), (b"599 odd\r\n", True), (b"600 odd\r\n", False),
])
def test_only_a_5yz_ehlo_reply_falls_back_to_helo(serve, client_for, ehlo_reply, falls_back):
    server = serve(on(b"EHLO", ehlo_reply))
    client = client_for(server)
    delivered_or_refused(client, falls_back, (600, "helo"))
    if falls_back:
        assert server.sessions[0].verbs()[:2] == [b"EHLO", b"HELO"]


@pytest.mark.parametrize("helo_reply, error, key", [
    (b"550 5.7.1 Go away\r\n", SMTPReplyError, "550 5.7.1 at HELO"),
    (CLOSE, SMTPDisconnected, "connection closed at HELO"),
])
def test_a_refused_helo_after_a_refused_ehlo_fails_at_helo(serve, client_for, helo_reply, error, key):
    server = serve(lambda line, session: b"502 5.5.2 Error\r\n" if line.startswith(b"EHLO") else
                   helo_reply if line.startswith(b"HELO") else None)
    client = client_for(server)
    with pytest.raises(error) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)
    assert (caught.value.phase, repr(caught.value)) == ("helo", key)
    assert not client.connected
