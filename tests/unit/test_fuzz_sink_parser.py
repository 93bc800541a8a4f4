"""Fuzzing the sink's command parser (`SmtpSession.feed_list`, sans-I/O) with hypothesis.

Random command lines, known verbs with random arguments, message data full
of dots and line ends, BDAT chunks, AUTH exchanges and plain garbage are
pipelined into a session in one burst, then again split at random points.
Whatever arrives: no exception, no hang, replies well formed, the same
replies and counters however the bytes were split, nothing held beyond one
command line, counters that add up, and a session that still answers QUIT
once the bytes are over.

The default run tries FUZZ_EXAMPLES inputs per test (200); a longer run:
``LOADKIT_FUZZ_EXAMPLES=20000 python3 -m pytest tests/unit/test_fuzz_*.py``.
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loadkit.sink import MAX_LINE, Authenticator, FaultPlan, SinkProfile, SinkStats

FUZZ_EXAMPLES = int(os.environ.get("LOADKIT_FUZZ_EXAMPLES", "200"))
# No example database: a run leaves no files behind; a failure prints the example to replay.
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

VERBS = [b"HELO", b"EHLO", b"LHLO", b"MAIL", b"RCPT", b"DATA", b"BDAT", b"RSET", b"NOOP", b"QUIT", b"VRFY",
         b"HELP", b"AUTH", b"STARTTLS", b"mail", b"Rcpt", b"XYZZY", b""]
ARGUMENTS = [b"", b"me", b"FROM:<a@b>", b"FROM:<>", b"FROM:<a@b> SIZE=100", b"FROM:<a@b> SIZE=x",
             b"FROM:<a@b> BODY=8BITMIME SMTPUTF8", b"FROM:<\xc3\xa9@b>", b"FROM:a@b", b"FROM:<a@b",
             b"TO:<c@d>", b"TO:<>", b"TO:<c@d> NOTIFY=NEVER", b"TO:<c@d> NOTIFY=BOGUS", b"TO:<c@d> ORCPT=rfc822;c@d",
             b"TO:<\xc3\xa9@d>", b"5", b"0 LAST", b"3 LAST", b"12", b"x LAST", b"PLAIN", b"PLAIN AGFAAGI=",
             b"LOGIN", b"CRAM-MD5", b"PLAIN ????", b"clock"]
LINE_ENDS = [b"\r\n", b"\n", b"\r\n", b"\r\n"]
DATA_PIECES = [b".", b"..", b"\r\n", b"\r\n.", b".\r\n", b"\r\n.\r\n", b"x", b"Subject: s", b"\r\n\r\n",
               b"\n.\n", b"\r", b"\n", b"\r\n..\r\n", b"X-Loadkit-Trace: r=1 s=a n=1 t=1.0"]

command_lines = st.builds(
    lambda verb, space, argument, end: verb + space + argument + end,
    st.sampled_from(VERBS), st.sampled_from([b" ", b"", b"  "]), st.sampled_from(ARGUMENTS), st.sampled_from(LINE_ENDS),
)
random_lines = st.builds(lambda body, end: body + end, st.binary(max_size=64), st.sampled_from(LINE_ENDS))
message_data = st.lists(st.sampled_from(DATA_PIECES) | st.binary(max_size=16), max_size=24).map(b"".join)
transactions = st.builds(
    lambda rcpts, data, end: b"MAIL FROM:<a@b>\r\n" + b"RCPT TO:<c@d>\r\n" * rcpts + b"DATA\r\n" + data + end,
    st.integers(0, 3), message_data, st.sampled_from([b"\r\n.\r\n", b"\r\n.\n", b""]),
)
chunks = st.builds(
    lambda body, last: b"BDAT %d%s\r\n" % (len(body), b" LAST" if last else b"") + body,
    st.binary(max_size=40), st.booleans(),
)
huge_lines = st.builds(lambda n, end: b"N" * n + end, st.sampled_from([MAX_LINE - 2, MAX_LINE - 1, MAX_LINE,
                                                                          MAX_LINE + 1, 3 * MAX_LINE]),
                       st.sampled_from(LINE_ENDS + [b""]))
pieces = st.one_of(command_lines, random_lines, message_data, transactions, chunks, huge_lines,
                   st.binary(max_size=32))
streams = st.lists(pieces, max_size=40).map(b"".join)
cuts = st.lists(st.integers(0, 1 << 16), max_size=12)


def profiles():
    return {
        "smtp": lambda: SinkProfile(),
        "lmtp": lambda: SinkProfile(lmtp=True),
        "auth": lambda: SinkProfile(authenticator=Authenticator({"u": "p"}, ("PLAIN", "LOGIN", "CRAM-MD5")),
                                    plaintext_auth=True, tls=True),
        "faults": lambda: SinkProfile(faults=FaultPlan(seed=1).reject("rcpt", 451, 0.3).reject(".", 554, 0.3)),
        "trace": lambda: SinkProfile(trace=True, max_size=200),
    }


def run(kind: str, stream: bytes, cut_at: list[int]):
    """Feed `stream` in the pieces `cut_at` makes, as a server would: stop once the session is closing."""
    stats = SinkStats(trace=kind == "trace")
    session = profiles()[kind]().new_session(stats)
    bounds = sorted({cut % (len(stream) + 1) for cut in cut_at} | {0, len(stream)})
    replies: list[bytes] = []
    for start, end in zip(bounds, bounds[1:]):
        for item in session.feed_list(stream[start:end]):
            replies.append(item if item.__class__ is bytes else item.reply)
        assert len(session._buf) <= MAX_LINE, "a session holds at most one command line"
        if session.closing:
            break
    return session, stats, replies


def check_replies(replies: list[bytes]) -> int:
    """Every reply is CRLF-ended lines of a code and a separator; returns the count of final lines."""
    finals = 0
    for reply in replies:
        if not reply:  # BDAT's place holder: its reply comes once the chunk is in
            continue
        assert reply.endswith(b"\r\n"), reply
        for line in reply[:-2].split(b"\r\n"):
            assert line[:3].isdigit() and line[:1] in b"2345" and line[3:4] in (b" ", b"-"), reply
            finals += line[3:4] == b" "
    return finals


def _settled(replies: list[bytes]) -> bytes:
    """The replies without what differs on purpose between sessions: the clock, CRAM-MD5's challenge."""
    return re.sub(rb"(clock=[0-9.]+|334 [A-Za-z0-9+/=]+)", b"T", b"".join(replies))


def counters(stats: SinkStats) -> dict:
    record = stats.as_dict()
    del record["duration"]
    return record


def check_session(kind: str, stream: bytes, cut_at: list[int]) -> None:
    whole_session, whole_stats, whole = run(kind, stream, [])
    split_session, split_stats, split = run(kind, stream, cut_at)
    assert _settled(split) == _settled(whole), "the replies do not depend on how the bytes were split"
    assert counters(split_stats) == counters(whole_stats)
    finals = check_replies(whole)
    stats = whole_stats
    queued = sum(reply.count(b"250 2.0.0 Ok: queued\r\n") for reply in whole)
    assert queued == (stats.recipients if kind == "lmtp" else stats.messages)
    assert stats.recipients >= stats.messages if kind != "auth" else True
    # the server counts each reply object it sends: by code, they add up to every final line
    for reply in whole:
        stats.replies[reply] = stats.replies.get(reply, 0) + 1
    assert sum(stats.reply_codes().values()) == finals
    # once the bytes are over, a session in command mode still answers, and QUIT ends it
    session = whole_session
    if not session.closing and not session._in_data:
        session._buf = b""  # a partial line the client never ended
        session._skipping = False
        assert check_replies(session.feed_list(b"\r\nQUIT\r\n")) >= 1
        assert session.closing


@FUZZ
@given(stream=streams, cut_at=cuts)
@example(stream=b"NOOP clock\r\n", cut_at=[])  # a reply that reads the clock: two runs, two readings
def test_smtp_sessions_take_any_bytes(stream, cut_at):
    check_session("smtp", stream, cut_at)


@FUZZ
@given(stream=streams, cut_at=cuts)
def test_lmtp_sessions_take_any_bytes(stream, cut_at):
    check_session("lmtp", b"LHLO me\r\n" + stream, cut_at)


@FUZZ
@given(stream=streams, cut_at=cuts)
@example(stream=b"AUTH CRAM-MD5\r\n", cut_at=[])  # a challenge of its own in each session
def test_auth_sessions_take_any_bytes(stream, cut_at):
    check_session("auth", b"EHLO me\r\n" + stream, cut_at)


@FUZZ
@given(stream=streams, cut_at=cuts)
def test_sessions_with_faults_take_any_bytes(stream, cut_at):
    check_session("faults", stream, cut_at)


@FUZZ
@given(stream=streams, cut_at=cuts)
def test_sessions_reading_traces_take_any_bytes(stream, cut_at):
    check_session("trace", stream, cut_at)


@FUZZ
@given(count=st.integers(1, 300), data=message_data)
def test_a_pipelined_burst_of_transactions_is_counted_exactly(count, data):
    stuffed = (b"." if data[:1] == b"." else b"") + data.replace(b"\r\n.", b"\r\n..")
    burst = (b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n" + stuffed + b"\r\n.\r\n") * count
    session, stats, replies = run("smtp", b"EHLO me\r\n" + burst + b"QUIT\r\n", [7, 1000, 4096])
    assert (stats.messages, stats.recipients, stats.bytes) == (count, 2 * count, count * (len(data) + 2))
    assert check_replies(replies) == 1 + 5 * count + 1 and session.closing
