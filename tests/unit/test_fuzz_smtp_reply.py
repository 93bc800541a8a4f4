"""Fuzzing the client's reply reading (`SmtpClient._read_reply`) and `Reply` with hypothesis.

Replies come from an in-process socket that hands out the server's bytes
in random pieces: well-formed single and multi-line replies, non-ASCII and
control bytes, bare LFs, lines around MAX_LINE, endless "250-" lines, and
random bytes. Whatever arrives: only `SMTPError`s, never a hang (the bytes
end, and the socket then reports end of file), the same replies and the same
failure however the bytes were split, every reply's text safe to show, and
nothing held past MAX_REPLY plus a line.

See tests/unit/test_fuzz_sink_parser.py for the example counts
(``LOADKIT_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from loadkit.smtp import Reply, SmtpClient, SMTPDisconnected, SMTPError, SMTPProtocolError
from loadkit.smtp._reply import MAX_LINE, MAX_REPLY
from loadkit.urls import Target
from tests.unit.test_fuzz_sink_parser import FUZZ


class PiecesSocket:
    """A socket whose peer sent `data` in the pieces `cuts` make; then end of file."""

    def __init__(self, data: bytes, cuts: list[int]):
        bounds = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
        self.pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])]
        self.received = 0
        self.closed = False

    def recv(self, size: int) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if len(piece) > size:
            self.pieces.insert(0, piece[size:])
            piece = piece[:size]
        self.received += len(piece)
        return piece

    def close(self) -> None:
        self.closed = True


def read_all(data: bytes, cuts: list[int]):
    """Every reply the client reads from `data`, and the error that ended the reading."""
    client = SmtpClient(Target("smtp", "127.0.0.1", 25), timeout=1.0)
    client._sock = PiecesSocket(data, cuts)
    replies = []
    for _ in range(len(data) + 1):  # each reply takes at least one byte: the loop cannot be endless
        try:
            reply = client._read_reply("mail")
        except SMTPError as error:
            assert error.phase == "mail"
            assert client._sock is None, "a failed read closes the connection"
            return replies, error
        replies.append(reply)
        assert len(client._buf) - client._at <= len(data)
    raise AssertionError("more replies than bytes")


def check_reply(reply: Reply) -> None:
    assert 0 <= reply.code <= 999
    for line in reply.lines:
        assert line.isprintable() and "\r" not in line and "\n" not in line
    str(reply), repr(reply), reply.enhanced_code, reply.ok
    assert len(reply.raw_lines) >= 1


CODES = st.sampled_from([b"220", b"250", b"354", b"421", b"451", b"550", b"554", b"000", b"999", b"25", b"2x0", b""])
TEXTS = st.one_of(
    st.sampled_from([b"", b"Ok", b"2.1.5 Ok", b"5.1.1 <a@b>: unknown", b"4.3.2 going away", b"PIPELINING",
                     "caf\u00e9 \u2603".encode(), b"\xff\xfe\x00\x07", b"\x1b[31mred"]),
    st.binary(max_size=40),
)
ENDS = st.sampled_from([b"\r\n", b"\n", b"\r\n", b"\r\r\n", b""])
lines = st.builds(lambda code, sep, text, end: code + sep + text + end,
                  CODES, st.sampled_from([b" ", b"-", b"", b"\t"]), TEXTS, ENDS)
long_lines = st.builds(lambda n, sep, end: b"250" + sep + b"x" * n + end,
                       st.sampled_from([MAX_LINE - 5, MAX_LINE - 4, MAX_LINE - 3, MAX_LINE, MAX_LINE + 1]),
                       st.sampled_from([b" ", b"-"]), st.sampled_from([b"\r\n", b"\n", b"\r\r\n"]))
endless = st.builds(lambda n, text: (b"250-" + text + b"\r\n") * n,
                    st.integers(0, 3 * MAX_REPLY // 40), st.sampled_from([b"x" * 36, b"PIPELINING"]))
streams = st.lists(st.one_of(lines, long_lines, endless, st.binary(max_size=20)), max_size=30).map(b"".join)
cuts = st.lists(st.integers(0, 1 << 20), max_size=16)


@FUZZ
@given(data=streams, cut_at=cuts)
# A line of MAX_LINE bytes and two CRs was refused when its LF came in a later read, taken otherwise.
@example(data=b"250 " + b"x" * (MAX_LINE - 4) + b"\r\r\n", cut_at=[MAX_LINE + 2])
def test_replies_do_not_depend_on_how_the_bytes_were_split(data, cut_at):
    whole, whole_error = read_all(data, [])
    split, split_error = read_all(data, cut_at)
    assert [(r.code, r.raw_lines) for r in split] == [(r.code, r.raw_lines) for r in whole]
    assert type(split_error) is type(whole_error)
    for reply in whole:
        check_reply(reply)
        assert len(b"".join(reply.raw_lines)) <= MAX_REPLY + MAX_LINE


@FUZZ
@given(data=streams)
def test_what_is_read_is_what_was_sent(data):
    """The replies read, put back on the wire, are the bytes sent up to where reading stopped."""
    replies, error = read_all(data, [1, 7, 500])
    wire = b"".join(reply._wire for reply in replies)
    assert data.startswith(wire)
    if isinstance(error, SMTPDisconnected):  # what is left is no whole reply
        rest = data[len(wire):]
        assert not rest.endswith(b"\n") or rest.rstrip(b"\r\n").split(b"\n")[-1][3:4] == b"-"


@FUZZ
@given(count=st.integers(MAX_REPLY // 20, MAX_REPLY // 4), cut_at=cuts)
def test_a_reply_that_never_ends_is_refused_past_max_reply(count, cut_at):
    data = b"250-0123456789abcd\r\n" * count + b"250 end\r\n"
    replies, error = read_all(data, cut_at)
    if 20 * count - 1 > MAX_REPLY:  # up to the LF of the last "250-" line
        assert replies == [] and isinstance(error, SMTPProtocolError)
        assert f"reply longer than {MAX_REPLY} bytes" in str(error)
    else:
        assert len(replies) == 1 and replies[0].raw_lines[-1] == b"end"


@FUZZ
@given(raw=st.binary(max_size=200), code=st.integers(0, 999))
def test_any_bytes_make_a_reply_that_is_safe_to_show(raw, code):
    check_reply(Reply(code, raw.split(b"\n")))
    check_reply(Reply(code, None, b"%03d " % code + raw.replace(b"\n", b"") + b"\r\n"))
