"""The client's ESMTP extensions, byte for byte on the wire: BDAT, DSN, SMTPUTF8, 8BITMIME, SIZE.

Against the scripted server of tests/unit/fake_smtp.py, which records every
byte it receives and reads BDAT chunks by their declared size, so each test
checks the exact command lines and chunks, and that a message the server
cannot take is refused before any of it is sent.
"""

from __future__ import annotations

import pytest

from loadkit.smtp import SMTPNotSupportedError, SMTPReplyError
from tests.unit import fake_smtp
from tests.unit.fake_smtp import QUEUED, Split, ehlo_offering
from tests.unit.test_smtp_client import MESSAGE, REJECT_USER, SENDER

serve, client_for = fake_smtp.serve, fake_smtp.client_for  # fixtures: a server per test, clients closed after it

DOTTED = b".leading dot\r\n..two dots\r\nno final line break"  # BDAT sends it as it is: no stuffing, no dot
EIGHT_BIT = "Subject: café\r\n\r\nçà et là\r\n".encode()


def mail_line(session) -> bytes:
    return next(line for line in session.commands if line.startswith(b"MAIL"))


def rcpt_lines(session) -> list[bytes]:
    return [line for line in session.commands if line.startswith(b"RCPT")]


# -- BDAT (RFC 3030) ------------------------------------------------------


def test_pipelined_bdat_sends_the_envelope_and_one_last_chunk_in_one_write(serve, client_for):
    server = serve(ehlo=ehlo_offering("CHUNKING"), reply_delay=0.02)  # all sent before a reply is seen before it
    timings = {}
    delivery = client_for(server, chunking=True).send(SENDER, ["a@example.com", "b@example.com"], DOTTED, timings)

    assert (delivery.ok, delivery.delivered) == (True, 2)
    session = server.sessions[0]
    assert session.chunks == [(len(DOTTED), True, DOTTED)]
    assert session.messages == [DOTTED]
    exchanges = session.exchanges()
    assert exchanges[2] == (
        b"MAIL FROM:<from@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
        b"BDAT %d LAST\r\n" % len(DOTTED) + DOTTED,
        b"250 2.1.0 Ok\r\n",
    )
    assert [received for received, _ in exchanges[3:]] == [b"", b"", b""]  # RCPT, RCPT, BDAT: nothing more sent
    assert exchanges[-1][1] == QUEUED
    assert session.verbs() == [b"EHLO", b"MAIL", b"RCPT", b"RCPT", b"BDAT"]
    assert set(timings) == {"connect", "banner", "helo", "envelope", "end-of-data"}


def test_pipelined_bdat_with_quit_sends_quit_in_the_same_write(serve, client_for):
    server = serve(ehlo=ehlo_offering("CHUNKING"), reply_delay=0.02)
    client = client_for(server, chunking=True, declare_size=False)
    assert client.send(SENDER, ["a@example.com"], MESSAGE, quit=True).delivered == 1

    assert not client.connected
    session = server.ended_session()
    assert session.exchanges()[2][0] == (b"MAIL FROM:<from@example.com>\r\nRCPT TO:<a@example.com>\r\n"
                                         b"BDAT %d LAST\r\n%sQUIT\r\n" % (len(MESSAGE), MESSAGE))
    assert session.verbs()[-2:] == [b"BDAT", b"QUIT"]
    assert [size for size, _, _ in session.chunks] == [len(MESSAGE)]


def test_bdat_without_pipelining_sends_the_chunk_after_the_rcpt_replies(serve, client_for):
    server = serve(ehlo=ehlo_offering("CHUNKING", pipelining=False), reply_delay=0.02)
    timings = {}
    client_for(server, chunking=True, declare_size=False).send(SENDER, ["a@example.com"], DOTTED, timings)

    session = server.sessions[0]
    assert [received for received, _ in session.exchanges()[1:]] == [
        b"EHLO loadkit.test\r\n",
        b"MAIL FROM:<from@example.com>\r\n",
        b"RCPT TO:<a@example.com>\r\n",
        b"BDAT %d LAST\r\n" % len(DOTTED) + DOTTED,
    ]
    assert session.chunks == [(len(DOTTED), True, DOTTED)]
    assert set(timings) == {"connect", "banner", "helo", "mail", "rcpt", "end-of-data"}  # no DATA, so no data phase


@pytest.mark.parametrize("chunking, offered", [(True, False), (False, True)], ids=["not-offered", "not-asked"])
def test_data_is_used_unless_chunking_is_both_asked_and_offered(serve, client_for, chunking, offered):
    server = serve(ehlo=ehlo_offering(*(["CHUNKING"] if offered else [])))
    client_for(server, chunking=chunking).send(SENDER, ["a@example.com"], MESSAGE)

    session = server.sessions[0]
    assert session.chunks == []
    assert session.verbs()[-2:] == [b"DATA", b"."]
    assert session.messages == [MESSAGE]


def test_lmtp_bdat_reads_one_reply_per_recipient_after_the_last_chunk(serve, client_for):
    def respond(line, session):
        if line.startswith(b"BDAT") and len(session.chunks) == 1:  # the first message: r2 refused
            return Split(b"250 2.0.0 <r1> Ok\r\n", b"550 5.1.1 <r2> User unknown\r\n", b"250 2.0.0 <r3> Ok\r\n")
        return None

    server = serve(respond, ehlo=ehlo_offering("CHUNKING"))
    client = client_for(server, "lmtp", chunking=True)
    recipients = ["r1@example.com", "r2@example.com", "r3@example.com"]
    delivery = client.send(SENDER, recipients, MESSAGE)

    assert (delivery.delivered, delivery.accepted) == (2, recipients)
    [error] = delivery.errors
    assert (error.phase, error.recipient, repr(error)) == ("end-of-data", "r2@example.com", "550 5.1.1 at END-OF-DATA")
    # Exactly three replies were read: the next transaction's two replies line up.
    assert client.send(SENDER, ["r4@example.com", "r5@example.com"], MESSAGE).delivered == 2
    session = server.sessions[0]
    assert session.verbs() == [b"LHLO", b"MAIL", b"RCPT", b"RCPT", b"RCPT", b"BDAT", b"MAIL", b"RCPT", b"RCPT", b"BDAT"]
    assert [(size, last) for size, last, _ in session.chunks] == [(len(MESSAGE), True)] * 2


@pytest.mark.parametrize("refuse", ["MAIL", "RCPT"])
def test_a_pipelined_chunk_behind_a_refused_envelope_has_its_reply_read(serve, client_for, refuse):
    first_only = iter([b"553 5.1.8 Sender rejected\r\n" if refuse == "MAIL" else REJECT_USER])
    server = serve(lambda line, session: next(first_only, None) if line.startswith(refuse.encode()) else None,
                   ehlo=ehlo_offering("CHUNKING"))
    client = client_for(server, chunking=True)
    with pytest.raises(SMTPReplyError) as caught:
        client.send(SENDER, ["a@example.com"], MESSAGE)
    assert caught.value.phase == refuse.lower()

    # The refused chunk's 554 was read with the failure, so RSET gets its own 250.
    assert client.send(SENDER, ["a@example.com"], MESSAGE).ok
    session = server.sessions[0]
    assert session.verbs() == [b"EHLO", b"MAIL", b"RCPT", b"BDAT", b"RSET", b"MAIL", b"RCPT", b"BDAT"]
    assert len(session.chunks) == 2 and session.messages == [MESSAGE]  # the first chunk was not taken



def test_pipelined_bdat_with_the_first_recipient_refused_delivers_to_the_second(serve, client_for):
    server = serve(lambda line, session: REJECT_USER if line.startswith(b"RCPT TO:<bad") else None,
                   ehlo=ehlo_offering("CHUNKING"))
    delivery = client_for(server, chunking=True).send(SENDER, ["bad@example.com", "a@example.com"], MESSAGE)

    assert (delivery.delivered, delivery.accepted) == (1, ["a@example.com"])
    assert [(e.recipient, e.code, e.phase) for e in delivery.errors] == [("bad@example.com", 550, "rcpt")]
    assert server.sessions[0].messages == [MESSAGE]


# -- DSN (RFC 3461) -------------------------------------------------------


def test_dsn_parameters_on_mail_and_every_rcpt(serve, client_for):
    server = serve(ehlo=ehlo_offering("DSN"))
    client = client_for(server, dsn_notify="success,failure", dsn_ret="hdrs", dsn_envid="run-1.42")
    client.send(SENDER, ["a@example.com", "b@example.com"], MESSAGE)

    session = server.sessions[0]
    assert mail_line(session) == b"MAIL FROM:<from@example.com> RET=HDRS ENVID=run-1.42"
    assert rcpt_lines(session) == [b"RCPT TO:<a@example.com> NOTIFY=SUCCESS,FAILURE",
                                   b"RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE"]


def test_dsn_notify_alone_leaves_mail_bare(serve, client_for):
    server = serve(ehlo=ehlo_offering("DSN"))
    client_for(server, dsn_notify="NEVER").send(SENDER, ["a@example.com"], MESSAGE)

    session = server.sessions[0]
    assert (mail_line(session), rcpt_lines(session)) == (
        b"MAIL FROM:<from@example.com>", [b"RCPT TO:<a@example.com> NOTIFY=NEVER"])


# -- SMTPUTF8 (RFC 6531) and 8BITMIME (RFC 6152) ---------------------------


def test_utf8_addresses_declare_smtputf8_and_go_out_as_utf8(serve, client_for):
    server = serve(ehlo=ehlo_offering("SMTPUTF8"))
    client_for(server).send("josé@exämple.com", ["zoë@exämple.com"], MESSAGE)

    session = server.sessions[0]
    assert mail_line(session) == "MAIL FROM:<josé@exämple.com> SMTPUTF8".encode()
    assert rcpt_lines(session) == ["RCPT TO:<zoë@exämple.com>".encode()]


def test_eight_bit_content_declares_body_8bitmime(serve, client_for):
    server = serve(ehlo=ehlo_offering("8BITMIME"))
    client = client_for(server)
    client.send(SENDER, ["a@example.com"], EIGHT_BIT)
    client.send(SENDER, ["a@example.com"], MESSAGE)  # 7-bit: no BODY= at all

    session = server.sessions[0]
    assert [line for line in session.commands if line.startswith(b"MAIL")] == [
        b"MAIL FROM:<from@example.com> BODY=8BITMIME", b"MAIL FROM:<from@example.com>"]
    assert session.messages == [EIGHT_BIT, MESSAGE]


def test_every_mail_parameter_together_in_a_fixed_order(serve, client_for):
    server = serve(ehlo=ehlo_offering("SIZE 1000000", "8BITMIME", "SMTPUTF8", "DSN"))
    client_for(server, dsn_ret="full", dsn_envid="e1").send("josé@exämple.com", ["a@example.com"], EIGHT_BIT)

    expected = f"MAIL FROM:<josé@exämple.com> SIZE={len(EIGHT_BIT)} SMTPUTF8 BODY=8BITMIME RET=FULL ENVID=e1"
    assert mail_line(server.sessions[0]) == expected.encode()


# -- SIZE (RFC 1870) ------------------------------------------------------


def test_size_is_declared_as_the_message_length_when_offered(serve, client_for):
    server = serve(ehlo=ehlo_offering("SIZE 1000"))
    client_for(server).send(SENDER, ["a@example.com"], DOTTED)
    assert mail_line(server.sessions[0]) == b"MAIL FROM:<from@example.com> SIZE=%d" % len(DOTTED)


@pytest.mark.parametrize("declare_size, ehlo", [(False, ehlo_offering("SIZE 1000")), (True, ehlo_offering())],
                         ids=["declare_size=False", "not-offered"])
def test_no_size_parameter_when_turned_off_or_not_offered(serve, client_for, declare_size, ehlo):
    server = serve(ehlo=ehlo)
    client_for(server, declare_size=declare_size).send(SENDER, ["a@example.com"], MESSAGE)
    assert mail_line(server.sessions[0]) == b"MAIL FROM:<from@example.com>"


def test_a_message_over_the_size_limit_is_refused_before_anything_is_sent(serve, client_for):
    server = serve(ehlo=ehlo_offering("SIZE 100"))
    client = client_for(server)
    with pytest.raises(SMTPNotSupportedError) as caught:
        client.send(SENDER, ["a@example.com"], b"x" * 101)

    error = caught.value
    assert (error.extension, error.phase, repr(error)) == ("SIZE", "mail", "over the server's SIZE limit at MAIL")
    assert "101 bytes" in str(error) and "100" in str(error)
    assert server.sessions[0].verbs() == [b"EHLO"]  # not one byte of the transaction
    assert client.connected

    # At the limit it goes, and the session needs no RSET: nothing of the refused one was sent.
    assert client.send(SENDER, ["a@example.com"], b"x" * 100).ok
    session = server.sessions[0]
    assert session.verbs() == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"."]
    assert mail_line(session) == b"MAIL FROM:<from@example.com> SIZE=100"


# -- what the server does not offer ---------------------------------------


@pytest.mark.parametrize("options, sender, message, extension", [
    ({"dsn_notify": "SUCCESS"}, SENDER, MESSAGE, "DSN"),
    ({"dsn_ret": "HDRS"}, SENDER, MESSAGE, "DSN"),
    ({}, "josé@exämple.com", MESSAGE, "SMTPUTF8"),
    ({}, SENDER, EIGHT_BIT, "8BITMIME"),
], ids=["dsn-notify", "dsn-ret", "smtputf8", "8bitmime"])
def test_a_message_needing_an_extension_not_offered_is_refused_before_anything_is_sent(
        serve, client_for, options, sender, message, extension):
    server = serve()  # PIPELINING and SIZE only
    client = client_for(server, **options)
    with pytest.raises(SMTPNotSupportedError) as caught:
        client.send(sender, ["a@example.com"], message)

    assert (caught.value.extension, caught.value.phase) == (extension, "mail")
    assert repr(caught.value) == f"{extension} not supported at MAIL"
    assert server.sessions[0].verbs() == [b"EHLO"]
    assert server.sessions[0].messages == []
