"""The sink's ESMTP extensions at the protocol level: BDAT, SIZE, DSN, SMTPUTF8, AUTH, STARTTLS, switches."""

from __future__ import annotations

import base64
import hmac

import pytest

from loadkit.sink import Authenticator, SinkProfile, SinkStats
from loadkit.sink._auth import load_users
from loadkit.sink._protocol import MAX_LINE

MAIL = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"


def session(lmtp=False, **profile):
    stats = SinkStats()
    profile = SinkProfile(lmtp=lmtp, **profile)
    return profile.new_session(stats), stats


def codes(replies: bytes) -> list[str]:
    return [line[:4].decode().strip() for line in replies.split(b"\r\n") if line]


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


# -- CHUNKING / BDAT ---------------------------------------------------------------


def test_bdat_chunks_are_counted_by_length_and_never_unstuffed():
    smtp, stats = session()
    chunk1, chunk2 = b"Subject: x\r\n\r\n.not stuffed\r\n", b"\r\n.\r\nstill data\r\n"
    replies = smtp.feed(
        b"EHLO c\r\n" + MAIL + b"BDAT %d\r\n" % len(chunk1) + chunk1
        + b"BDAT %d LAST\r\n" % len(chunk2) + chunk2 + b"QUIT\r\n"
    )
    assert codes(replies)[-5:] == ["250", "250", "250", "250", "221"]
    assert b"250 2.0.0 Ok: chunk received\r\n250 2.0.0 Ok: queued\r\n221" in replies
    assert (stats.messages, stats.recipients, stats.bytes) == (1, 1, len(chunk1) + len(chunk2))


def test_bdat_split_at_every_position_counts_the_same():
    chunk = b"0123456789" * 3
    wire = b"EHLO c\r\n" + MAIL + b"BDAT 30 LAST\r\n" + chunk + b"NOOP\r\n"
    for cut in range(1, len(wire)):
        smtp, stats = session()
        replies = smtp.feed(wire[:cut]) + smtp.feed(wire[cut:])
        assert codes(replies)[-2:] == ["250", "250"], cut
        assert b"Ok: queued" in replies, cut
        assert (stats.messages, stats.bytes) == (1, 30), cut


def test_bdat_zero_last_ends_the_message_and_lmtp_answers_per_recipient():
    lmtp, stats = session(lmtp=True)
    replies = lmtp.feed(b"LHLO c\r\n" + MAIL + b"RCPT TO:<c@example.com>\r\nBDAT 3\r\nabcBDAT 0 LAST\r\n")
    assert replies.endswith(b"250 2.0.0 Ok: chunk received\r\n" + b"250 2.0.0 Ok: queued\r\n" * 2)
    assert (stats.messages, stats.recipients, stats.bytes) == (1, 2, 3)


@pytest.mark.parametrize(
    "commands, expected",
    [
        (b"BDAT 4\r\nabcdNOOP\r\n", ["503", "250"]),  # no MAIL: the chunk is still read
        (b"MAIL FROM:<a@b>\r\nBDAT 2 LAST\r\nxyNOOP\r\n", ["250", "554", "250"]),  # no recipient
        (b"BDAT ten\r\nNOOP\r\n", ["501", "250"]),
        (b"BDAT 1 FIRST\r\nNOOP\r\n", ["501", "250"]),
        (MAIL + b"BDAT 1\r\nxDATA\r\n", ["250", "250", "250", "503"]),  # no DATA after BDAT
    ],
)
def test_bdat_errors(commands, expected):
    smtp, stats = session()
    assert codes(smtp.feed(b"HELO c\r\n" + commands))[1:] == expected
    assert stats.messages == 0


def test_bdat_over_the_size_limit_is_refused_then_the_rest_needs_mail():
    smtp, stats = session(max_size=5)
    replies = smtp.feed(b"EHLO c\r\n" + MAIL + b"BDAT 4\r\nabcdBDAT 4\r\nefghBDAT 1 LAST\r\niNOOP\r\n")
    # MAIL, RCPT, the first chunk, the one past the limit, the next one (no transaction), NOOP
    assert codes(replies)[-6:] == ["250", "250", "250", "552", "503", "250"]
    assert b"552 5.3.4" in replies and stats.messages == 0


def test_without_chunking_bdat_is_unknown():
    smtp, _ = session(capabilities=("PIPELINING", "SIZE"))
    assert codes(smtp.feed(b"EHLO c\r\nBDAT 3\r\n")) == ["250-", "250-", "250", "500"]


# -- MAIL and RCPT parameters ----------------------------------------------------


@pytest.mark.parametrize(
    "mail, rcpt, expected",
    [
        (b"<a@b> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=QQ314159", b"<c@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d",
         ["250", "250"]),
        (b"<a@b> RET=NEVER", b"<c@d>", ["501", "503"]),
        (b"<a@b>", b"<c@d> NOTIFY=NEVER,SUCCESS", ["250", "501"]),
        (b"<a@b>", b"<c@d> NOTIFY=NEVER", ["250", "250"]),
        (b"<a@b>", b"<c@d> ORCPT=nosemicolon", ["250", "501"]),
        (b"<a@b> BODY=BINARYMIME", b"<c@d>", ["501", "503"]),
        (b"<a@b> AUTH=<>", b"<c@d>", ["555", "503"]),  # no authenticator: no AUTH extension
        (b"<j\xc3\xb6rg@b> SMTPUTF8", b"<\xc3\xbc@d>", ["250", "250"]),
        (b"<j\xc3\xb6rg@b>", b"<c@d>", ["553", "503"]),
        (b"<a@b>", b"<\xc3\xbc@d>", ["250", "553"]),
        (b"<a@b> SMTPUTF8=yes", b"<c@d>", ["501", "503"]),
    ],
)
def test_mail_and_rcpt_parameters(mail, rcpt, expected):
    smtp, _ = session()
    replies = smtp.feed(b"EHLO c\r\nMAIL FROM:" + mail + b"\r\nRCPT TO:" + rcpt + b"\r\n")
    assert codes(replies)[-2:] == expected


@pytest.mark.parametrize(
    "capabilities, parameter",
    [
        (("SIZE",), b"NOTIFY=NEVER"),  # on RCPT: DSN off
        (("DSN",), b"SMTPUTF8"),
    ],
)
def test_parameters_of_an_extension_turned_off_are_refused(capabilities, parameter):
    smtp, _ = session(capabilities=capabilities)
    command = b"RCPT TO:<c@d> " if parameter.startswith(b"NOTIFY") else b"MAIL FROM:<a@b> "
    replies = smtp.feed(b"EHLO c\r\n" + (b"MAIL FROM:<a@b>\r\n" if command.startswith(b"RCPT") else b"")
                        + command + parameter + b"\r\n")
    assert codes(replies)[-1] == "555"


def test_the_size_parameter_against_the_limit():
    smtp, _ = session(max_size=1000)
    assert codes(smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b> SIZE=1001\r\n"))[-1] == "552"
    assert codes(smtp.feed(b"MAIL FROM:<a@b> SIZE=1000\r\n")) == ["250"]
    unlimited, _ = session(max_size=0)
    assert b"250-SIZE\r\n" in unlimited.feed(b"EHLO c\r\n")
    assert codes(unlimited.feed(b"MAIL FROM:<a@b> SIZE=999999999999\r\n")) == ["250"]


# -- switches ------------------------------------------------------------------------


def test_without_enhancedstatuscodes_replies_lose_their_codes():
    smtp, _ = session(capabilities=("PIPELINING",))
    replies = smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nFOO\r\n")
    assert replies == (
        b"250-loadkit-sink\r\n250 PIPELINING\r\n250 Ok\r\n250 Ok\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n250 Ok: queued\r\n500 Error: command not recognized\r\n"
    )


def test_without_esmtp_ehlo_is_unknown_and_helo_works():
    smtp, stats = session(esmtp=False)
    assert smtp.profile.banner == b"220 loadkit-sink loadkit\r\n"
    replies = smtp.feed(b"EHLO c\r\nHELO c\r\nMAIL FROM:<a@b> SIZE=10\r\nMAIL FROM:<a@b>\r\n")
    assert replies == (b"500 Error: command not recognized\r\n250 loadkit-sink\r\n"
                       b"555 Unsupported option\r\n250 Ok\r\n")


def test_greeting_text():
    assert SinkProfile(hostname="mx.test", greeting="ready").banner == b"220 mx.test ready\r\n"


# -- AUTH --------------------------------------------------------------------------


def auth_session(users=None, mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"), plaintext=True, tls=False):
    stats = SinkStats()
    profile = SinkProfile(authenticator=Authenticator(users, mechanisms), plaintext_auth=plaintext)
    return profile.new_session(stats, tls=tls), stats


def test_auth_plain_with_initial_response_and_in_two_steps():
    smtp, stats = auth_session({"alice": "s3cret"})
    assert b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n" in smtp.feed(b"EHLO c\r\n")
    assert smtp.feed(b"AUTH PLAIN " + b64("\0alice\0wrong") + b"\r\n") == b"535 5.7.8 Error: authentication failed\r\n"
    assert smtp.feed(b"AUTH PLAIN\r\n") == b"334 \r\n"
    assert smtp.feed(b64("\0alice\0s3cret") + b"\r\n") == b"235 2.7.0 Authentication successful\r\n"
    assert codes(smtp.feed(b"AUTH PLAIN " + b64("\0alice\0s3cret") + b"\r\n")) == ["503"]
    assert (stats.auth_ok, stats.auth_failed) == (1, 1)


def test_auth_login_pipelined_with_the_transaction():
    smtp, stats = auth_session({"bob": "pw:with:colons"})
    replies = smtp.feed(
        b"EHLO c\r\nAUTH LOGIN\r\n" + b64("bob") + b"\r\n" + b64("pw:with:colons") + b"\r\n"
        b"MAIL FROM:<a@b> AUTH=<>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\n"
    )
    assert codes(replies)[-7:] == ["334", "334", "235", "250", "250", "354", "250"]
    assert b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" in replies
    assert (stats.auth_ok, stats.messages) == (1, 1)


def test_auth_cram_md5():
    smtp, stats = auth_session({"carol": "pass"})
    smtp.feed(b"EHLO c\r\n")
    challenge = base64.b64decode(smtp.feed(b"AUTH CRAM-MD5\r\n")[4:].strip())
    assert challenge.startswith(b"<") and challenge.endswith(b"@loadkit-sink>")
    digest = hmac.new(b"pass", challenge, "md5").hexdigest()
    assert codes(smtp.feed(base64.b64encode(b"carol " + digest.encode()) + b"\r\n")) == ["235"]
    assert stats.auth_ok == 1


@pytest.mark.parametrize(
    "exchange, expected",
    [
        ([b"AUTH LOGIN", b"*"], ["334", "501"]),  # aborted
        ([b"AUTH PLAIN", b"not base64!"], ["334", "501"]),
        ([b"AUTH XOAUTH2 abc"], ["504"]),
        ([b"AUTH"], ["501"]),
        ([b"AUTH PLAIN =", b"NOOP"], ["535", "250"]),  # an empty response is no user
        ([b"AUTH LOGIN " + b64("anyone"), b64("anything")], ["334", "235"]),  # no users file: everyone
    ],
)
def test_auth_odd_exchanges(exchange, expected):
    smtp, _ = auth_session()
    smtp.feed(b"EHLO c\r\n")
    assert codes(smtp.feed(b"".join(line + b"\r\n" for line in exchange))) == expected


def test_auth_is_offered_before_tls_only_when_allowed():
    smtp, _ = auth_session(plaintext=False)
    assert b"AUTH" not in smtp.feed(b"EHLO c\r\n")
    assert smtp.feed(b"AUTH PLAIN " + b64("\0u\0p") + b"\r\n") == b"503 5.5.1 Error: authentication not enabled\r\n"
    secure, _ = auth_session(plaintext=False, tls=True)
    assert b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n" in secure.feed(b"EHLO c\r\n")
    assert codes(secure.feed(b"AUTH PLAIN " + b64("\0u\0p") + b"\r\n")) == ["235"]


def test_auth_inside_a_transaction_is_refused():
    smtp, _ = auth_session()
    assert codes(smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nAUTH PLAIN " + b64("\0u\0p") + b"\r\n"))[-1] == "503"


def test_users_file(tmp_path):
    path = tmp_path / "users"
    path.write_text("# accounts\nalice:one\n\nbob:two:three\n")
    assert load_users(str(path)) == {"alice": "one", "bob": "two:three"}
    path.write_text("alice:one\nno colon here\n")
    with pytest.raises(ValueError, match=r"users:2: expected user:password"):
        load_users(str(path))
    with pytest.raises(ValueError, match="unknown AUTH mechanism GSSAPI"):
        Authenticator(None, ("PLAIN", "GSSAPI"))


# -- STARTTLS ----------------------------------------------------------------------


def test_starttls_stops_reading_and_tls_started_forgets_the_session():
    stats = SinkStats()
    profile = SinkProfile(tls=True, authenticator=Authenticator(), plaintext_auth=False)
    smtp = profile.new_session(stats)
    ehlo = smtp.feed(b"EHLO c\r\n")
    assert b"250-STARTTLS\r\n" in ehlo and b"AUTH" not in ehlo
    # what follows STARTTLS in the same read is never answered (RFC 3207 4.2)
    assert smtp.feed(b"STARTTLS\r\nMAIL FROM:<injected@b>\r\n") == b"220 2.0.0 Ready to start TLS\r\n"
    assert smtp.closing and smtp.starttls
    smtp.tls_started()
    assert not smtp.closing and smtp.tls
    ehlo = smtp.feed(b"EHLO c\r\n")
    assert b"STARTTLS" not in ehlo and b"250-AUTH PLAIN LOGIN\r\n" in ehlo
    assert codes(smtp.feed(b"STARTTLS\r\n")) == ["503"]
    assert codes(smtp.feed(b"MAIL FROM:<a@b>\r\n")) == ["250"]  # the injected MAIL was dropped


@pytest.mark.parametrize("commands, expected", [
    (b"STARTTLS now\r\n", ["501"]),
    (b"MAIL FROM:<a@b>\r\nSTARTTLS\r\n", ["250", "503"]),
])
def test_starttls_refusals(commands, expected):
    smtp, _ = session(tls=True)
    assert codes(smtp.feed(commands)) == expected
    assert not smtp.starttls


def test_without_a_tls_context_starttls_is_unknown():
    smtp, _ = session()
    assert b"STARTTLS" not in smtp.feed(b"EHLO c\r\n")
    assert codes(smtp.feed(b"STARTTLS\r\n")) == ["500"]


def test_starttls_forgets_authentication_and_lmtp_wants_lhlo_again():
    """RFC 3207 4.2: after the handshake the session starts over, AUTH and greeting included."""
    stats = SinkStats()
    profile = SinkProfile(lmtp=True, tls=True, authenticator=Authenticator(), plaintext_auth=True)
    lmtp = profile.new_session(stats)
    assert codes(lmtp.feed(b"LHLO c\r\nAUTH PLAIN " + b64("\0u\0p") + b"\r\nSTARTTLS\r\n"))[-2:] == ["235", "220"]
    lmtp.tls_started()
    assert not lmtp.starttls  # a later QUIT closes the connection, it does not start TLS again
    assert lmtp.feed(b"MAIL FROM:<a@b>\r\n") == b"503 5.5.1 Error: send LHLO first\r\n"
    assert codes(lmtp.feed(b"LHLO c\r\nAUTH PLAIN " + b64("\0u\0p") + b"\r\n"))[-1] == "235"
    assert lmtp.feed(b"QUIT\r\n") == b"221 2.0.0 Bye\r\n"
    assert lmtp.closing and not lmtp.starttls
    assert stats.auth_ok == 2


def test_auth_outcomes_add_up_over_sessions_and_attempts():
    stats = SinkStats()
    profile = SinkProfile(authenticator=Authenticator({"alice": "s3cret"}), plaintext_auth=True)
    for _ in range(2):
        smtp = profile.new_session(stats)
        smtp.feed(b"EHLO c\r\n")
        for _ in range(2):
            assert codes(smtp.feed(b"AUTH PLAIN " + b64("\0alice\0wrong") + b"\r\n")) == ["535"]
        assert codes(smtp.feed(b"AUTH PLAIN " + b64("\0alice\0s3cret") + b"\r\n")) == ["235"]
    assert (stats.auth_ok, stats.auth_failed) == (2, 4)


def test_an_auth_answer_split_over_reads_is_answered_once_whole():
    smtp, stats = auth_session({"alice": "s3cret"})
    smtp.feed(b"EHLO c\r\n")
    answer = b64("\0alice\0s3cret") + b"\r\n"
    assert smtp.feed(b"AUTH PLAIN\r\n" + answer[:5]) == b"334 \r\n"
    assert smtp.feed(answer[5:-1]) == b""
    assert smtp.feed(answer[-1:] + b"NOOP\r\n") == b"235 2.7.0 Authentication successful\r\n250 2.0.0 Ok\r\n"
    assert stats.auth_ok == 1


def test_an_auth_answer_after_a_long_pipelined_burst_is_not_taken_for_an_overlong_line():
    smtp, stats = auth_session({"alice": "s3cret"})
    answer = b64("\0alice\0s3cret") + b"\r\n"
    burst = b"EHLO c\r\n" + b"NOOP\r\n" * 700 + b"AUTH PLAIN\r\n" + answer[:4]  # the answer starts past MAX_LINE
    assert codes(smtp.feed(burst))[-2:] == ["250", "334"]
    assert smtp.feed(answer[4:]) == b"235 2.7.0 Authentication successful\r\n"


def test_an_auth_answer_of_max_line_bytes_is_an_answer_and_a_longer_one_is_refused():
    smtp, _ = auth_session()
    smtp.feed(b"EHLO c\r\nAUTH PLAIN\r\n")
    # 4096 bytes with no line break yet: still an answer (base64 of no valid PLAIN triple)
    assert smtp.feed(b"A" * MAX_LINE) == b""
    assert smtp.feed(b"\r\n") == b"535 5.7.8 Error: authentication failed\r\n"
    smtp.feed(b"AUTH PLAIN\r\n")
    assert smtp.feed(b"A" * (MAX_LINE + 1)) == b""
    # past the limit the exchange is over and the rest of the line is skipped as one overlong line
    assert smtp.feed(b"AAAA\r\nNOOP\r\n") == b"500 5.5.6 Error: line too long\r\n250 2.0.0 Ok\r\n"


def test_an_empty_auth_answer_is_an_answer():
    """RFC 4954 4: "=" is an empty response; a bare line break alone in a read ends the answer too."""
    smtp, _ = auth_session()
    smtp.feed(b"EHLO c\r\n")
    assert smtp.feed(b"AUTH LOGIN\r\n=\r\n") == b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
    assert codes(smtp.feed(b"*\r\n")) == ["501"]  # aborted
    assert codes(smtp.feed(b"AUTH PLAIN\r\n")) == ["334"]
    assert codes(smtp.feed(b"\n")) == ["535"]  # no user in an empty PLAIN response


def test_an_auth_answer_ending_in_x_keeps_its_last_character():
    smtp, stats = auth_session({"abW": "pw"})  # base64 of "abW" is "YWJX"
    smtp.feed(b"EHLO c\r\n")
    assert codes(smtp.feed(b"AUTH LOGIN\r\n" + b64("abW") + b"\r\n" + b64("pw") + b"\r\n")) == ["334", "334", "235"]
    assert stats.auth_ok == 1


# -- parameter values at their limits --------------------------------------------


@pytest.mark.parametrize(
    "mail, expected",
    [
        (b"<a@b> BODY=7BIT", "250"), (b"<a@b> body=7bit", "250"), (b"<a@b> BODY=8bitmime", "250"),  # RFC 6152
        (b"<a@b> RET=FULL", "250"), (b"<a@b> ret=full", "250"), (b"<a@b> RET=hdrs", "250"),  # RFC 3461 4.3
        (b"<a@b> ENVID=" + b"x" * 100, "250"), (b"<a@b> ENVID=" + b"x" * 101, "501"), (b"<a@b> ENVID=", "501"),
    ],
)
def test_mail_parameter_values_are_matched_without_case_and_envid_has_at_most_100_characters(mail, expected):
    smtp, _ = session()
    assert codes(smtp.feed(b"EHLO c\r\nMAIL FROM:" + mail + b"\r\n"))[-1] == expected


@pytest.mark.parametrize(
    "rcpt, expected",
    [
        (b"<c@d> NOTIFY=SUCCESS,FAILURE,DELAY", "250"), (b"<c@d> NOTIFY=delay", "250"),
        (b"<c@d> NOTIFY=", "501"),
        (b"<c@d> ORCPT=rfc822;", "501"), (b"<c@d> ORCPT=;c@d", "501"), (b"<c@d> ORCPT=rfc822;c@d", "250"),
    ],
)
def test_rcpt_dsn_parameters(rcpt, expected):
    smtp, _ = session()
    assert codes(smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:" + rcpt + b"\r\n"))[-1] == expected


def test_a_utf8_recipient_needs_smtputf8_whatever_other_parameters_mail_had():
    smtp, _ = session()
    replies = smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b> BODY=8BITMIME SIZE=10\r\nRCPT TO:<\xc3\xbc@d>\r\n")
    assert codes(replies)[-2:] == ["250", "553"]


def test_mail_auth_parameter_inside_tls_when_auth_is_offered_only_there():
    smtp, _ = auth_session(plaintext=False, tls=True)
    assert smtp.feed(b"EHLO c\r\nMAIL FROM:<a@b> AUTH=<>\r\n").endswith(b"250 2.1.0 Ok\r\n")
    clear, _ = auth_session(plaintext=False)
    assert clear.feed(b"EHLO c\r\nMAIL FROM:<a@b> AUTH=<>\r\n").endswith(b"555 5.5.4 Unsupported option\r\n")


def test_bdat_chunks_adding_up_to_exactly_the_size_limit_are_accepted():
    """RFC 1870: only a message larger than the limit is refused."""
    smtp, stats = session(max_size=10)
    replies = smtp.feed(b"EHLO c\r\n" + MAIL + b"BDAT 6\r\nabcdefBDAT 4 LAST\r\nghij")
    assert codes(replies)[-2:] == ["250", "250"] and replies.endswith(b"Ok: queued\r\n")
    assert (stats.messages, stats.bytes) == (1, 10)


def test_a_bdat_transaction_leaves_nothing_behind_for_the_next_one():
    smtp, stats = session()
    replies = smtp.feed(
        b"EHLO c\r\n" + MAIL + b"BDAT 3\r\nabcBDAT 2 LAST\r\nde"  # 5 bytes in two chunks
        + MAIL + b"BDAT 4 LAST\r\nfghi"  # then 4 in one
        + MAIL + b"DATA\r\nxy\r\n.\r\n"  # then DATA, not "DATA after BDAT"
    )
    assert codes(replies)[-11:] == ["250", "250", "250", "250", "250", "250", "250", "250", "250", "354", "250"]
    assert (stats.messages, stats.bytes) == (3, 5 + 4 + len(b"xy\r\n"))
