"""SMTP replies: the Reply object, and how the client reads replies off the wire.

Reading goes through SmtpClient against the scripted server in
tests/unit/fake_smtp.py, mostly on the banner: the first reply a client reads.
"""

from __future__ import annotations

import pytest

from loadkit.smtp import Reply, SmtpClient, SMTPProtocolError, SMTPReplyError
from loadkit.smtp._reply import MAX_LINE
from tests.unit.fake_smtp import SILENT, FakeSmtpServer, Split


@pytest.fixture
def banner_of():
    """``banner_of(banner)``: connect to a server sending `banner`; the client's Reply or its error."""
    def connect(banner, timeout: float = 1.0, split_pause: float = 0.005):
        with FakeSmtpServer(banner=banner, split_pause=split_pause) as server:
            client = SmtpClient(server.target(), timeout=timeout, connect_timeout=1.0)
            try:
                client.connect()
                return client.banner
            finally:
                client.close()
    return connect


# -- the Reply object -----------------------------------------------------


@pytest.mark.parametrize("code, ok", [(220, True), (250, True), (354, True), (421, False), (550, False)])
def test_ok_means_a_positive_or_intermediate_reply(code, ok):
    assert Reply(code, [b"text"]).ok is ok


def test_multi_line_text_is_joined_and_str_shows_the_first_line():
    reply = Reply(250, [b"mx.example", b"PIPELINING", b"SIZE 10240000"])
    assert reply.lines == ["mx.example", "PIPELINING", "SIZE 10240000"]
    assert reply.text == "mx.example\nPIPELINING\nSIZE 10240000"
    assert str(reply) == "250 mx.example"
    assert repr(reply) == "Reply(250, 'mx.example\\nPIPELINING\\nSIZE 10240000')"


def test_a_reply_without_text():
    reply = Reply(250, [b""])
    assert (reply.text, str(reply), reply.enhanced_code) == ("", "250", None)
    assert Reply(250, []).enhanced_code is None


def test_a_reply_with_no_lines_at_all_shows_its_code():
    assert (str(Reply(250, [])), Reply(250, []).text) == ("250", "")
    assert (str(Reply(421)), Reply(421).raw_lines) == ("421", [])  # neither lines nor wire


@pytest.mark.parametrize("first_line, enhanced", [
    (b"5.1.1 <bad@example.com>: Recipient address rejected", "5.1.1"),
    (b"2.0.0 Ok: queued as 4Xc9", "2.0.0"),
    (b"4.7.1 Try again later", "4.7.1"),
    (b"5.7.1", "5.7.1"),
    (b"5.123.456 long subject and detail", "5.123.456"),
    (b"Ok", None),
    (b"3.0.0 not a class of enhanced codes", None),
    (b"5.1.1: no space after the code", None),
    (b"5.1 two parts only", None),
    (b"5.1.1234 detail too long", None),
])
def test_enhanced_status_code_is_taken_from_the_first_line(first_line, enhanced):
    assert Reply(550, [first_line, b"2.0.0 later lines do not count"]).enhanced_code == enhanced


def test_non_printable_characters_are_censored():
    reply = Reply(550, [b"5.1.1 bad\x01user\x1b[31m\tname \xff\xfe caf\xc3\xa9", b"second\x00line"])
    assert reply.lines == ["5.1.1 bad?user?[31m?name ?? caf?", "second?line"]
    assert reply.enhanced_code == "5.1.1"
    assert "\x1b" not in str(reply) and "\x00" not in reply.text


# -- reading replies off the wire -----------------------------------------


def test_multi_line_reply_is_joined(banner_of):
    banner = banner_of(b"220-mx.example ESMTP\r\n220-no UCE\r\n220 welcome\r\n")
    assert (banner.code, banner.lines) == (220, ["mx.example ESMTP", "no UCE", "welcome"])
    assert banner.text == "mx.example ESMTP\nno UCE\nwelcome"


def test_reply_split_across_several_writes_is_put_back_together(banner_of):
    banner = banner_of(Split(b"2", b"20-first", b" line\r", b"\n220-sec", b"ond\r\n220 la", b"st\r\n"))
    assert (banner.code, banner.lines) == (220, ["first line", "second", "last"])


def test_bare_lf_line_endings_are_accepted(banner_of):
    assert banner_of(b"220-one\n220 two\n").lines == ["one", "two"]


def test_code_only_reply(banner_of):
    banner = banner_of(b"220\r\n")
    assert (banner.code, banner.text, str(banner)) == (220, "", "220")


def test_censored_text_reaches_the_error_message():
    def respond(line, session):
        return b"550 5.1.1 bad\x01user\xff\r\n" if line.startswith(b"RCPT") else None

    with FakeSmtpServer(respond) as server:
        client = SmtpClient(server.target(), timeout=1.0)
        with pytest.raises(SMTPReplyError) as caught:
            client.send("a@example.com", ["b@example.com"], b"hi\r\n")
        client.close()

    assert caught.value.enhanced_code == "5.1.1"
    assert caught.value.text == "5.1.1 bad?user?"
    assert str(caught.value) == "550 5.1.1 bad?user? at RCPT for <b@example.com>"


def test_a_line_of_exactly_the_cap_is_accepted(banner_of):
    banner = banner_of(b"220 " + b"x" * (MAX_LINE - 4) + b"\r\n")
    assert len(banner.text) == MAX_LINE - 4


@pytest.mark.parametrize("banner", [
    b"220 " + b"x" * MAX_LINE + b"\r\n",
    Split(b"220-ok\r\n220 " + b"x" * 3000, b"x" * 3000 + b"\r\n"),
], ids=["in-one-write", "in-two-writes"])
def test_a_line_longer_than_the_cap_is_a_protocol_error(banner_of, banner):
    with pytest.raises(SMTPProtocolError) as caught:
        banner_of(banner)
    assert caught.value.phase == "banner"
    assert repr(caught.value) == "protocol error at BANNER"


def test_an_endless_line_is_refused_without_waiting_for_its_end(banner_of):
    # The server sends more than the cap and then nothing: the client must not wait for a line end.
    with pytest.raises(SMTPProtocolError):
        banner_of(Split(b"220 " + b"x" * (MAX_LINE + 100), SILENT), timeout=1.0)


@pytest.mark.parametrize("banner", [
    b"hello there\r\n",
    b"2x0 ok\r\n",
    b"ESMTP 220\r\n",
    b"\r\n",
    b"220-first line is fine\r\nthen garbage\r\n",
])
def test_a_line_without_a_three_digit_code_is_a_protocol_error(banner_of, banner):
    with pytest.raises(SMTPProtocolError) as caught:
        banner_of(banner)
    assert caught.value.phase == "banner"
    assert "not an SMTP reply" in str(caught.value)


@pytest.mark.parametrize("banner", [b"25\r\n", b"2\r\n", b"25 short\r\n"])
def test_a_code_shorter_than_three_digits_is_a_protocol_error(banner_of, banner):
    with pytest.raises(SMTPProtocolError):
        banner_of(banner)


def test_a_line_of_exactly_the_cap_is_accepted_when_its_lf_comes_later(banner_of):
    # The pause makes the client read the line before its LF arrives.
    banner = banner_of(Split(b"220 " + b"x" * (MAX_LINE - 4) + b"\r", b"\n"), split_pause=0.3)
    assert len(banner.text) == MAX_LINE - 4
