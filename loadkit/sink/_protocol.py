"""The sink's side of SMTP (RFC 5321) and LMTP (RFC 2033), free of I/O.

`SmtpSession.feed(data)` takes whatever bytes arrived and returns every reply
they call for, joined, so a pipelining client (RFC 2920) gets one write per
burst. One method per verb (``smtp_MAIL``, ``smtp_RCPT``, ...) returns the
reply; `LmtpSession` changes only the greeting verb and the end of data (one
reply per accepted recipient).

Message data is never split into lines: the buffer is searched for the
``<CR><LF>.<CR><LF>`` terminator, only four bytes are carried over between
reads, and the dot-stuffing is counted, not undone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadkit.sink._stats import SinkStats

MAX_LINE = 4096  # longest command line accepted, CRLF included
DEFAULT_MAX_SIZE = 10240000  # Postfix's message_size_limit
DEFAULT_CAPABILITIES = ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES")

TERMINATOR = b"\r\n.\r\n"
LINE_START_DOT = b"\r\n."  # every data line starting with a dot lost one on the wire
DOT_VISITS = 8  # dots looked at one by one before scanning the rest in C

# Replies that never change. Those naming the host are built per profile.
S221_BYE = b"221 2.0.0 Bye\r\n"
S250_OK = b"250 2.0.0 Ok\r\n"
S250_SENDER_OK = b"250 2.1.0 Ok\r\n"
S250_RECIPIENT_OK = b"250 2.1.5 Ok\r\n"
S250_QUEUED = b"250 2.0.0 Ok: queued\r\n"
S252_VRFY = b"252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
S354_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
S421_TIMEOUT = b"421 4.4.2 Error: timeout exceeded\r\n"
S421_SHUTDOWN = b"421 4.3.0 Error: server shutting down\r\n"
S500_UNRECOGNIZED = b"500 5.5.2 Error: command not recognized\r\n"
S500_LINE_TOO_LONG = b"500 5.5.6 Error: line too long\r\n"
S501_HELO = b"501 5.5.4 Syntax: HELO hostname\r\n"
S501_EHLO = b"501 5.5.4 Syntax: EHLO hostname\r\n"
S501_LHLO = b"501 5.5.4 Syntax: LHLO hostname\r\n"
S501_MAIL = b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
S501_RCPT = b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
S501_NO_ARGUMENTS = b"501 5.5.4 Syntax: no arguments allowed\r\n"
S501_VRFY = b"501 5.5.4 Syntax: VRFY address\r\n"
S501_SIZE = b"501 5.5.4 Bad message size syntax\r\n"
S503_LHLO_FIRST = b"503 5.5.1 Error: send LHLO first\r\n"
S503_NESTED_MAIL = b"503 5.5.1 Error: nested MAIL command\r\n"
S503_NEED_MAIL = b"503 5.5.1 Error: need MAIL command\r\n"
S503_NEED_RCPT = b"503 5.5.1 Error: need RCPT command\r\n"
S552_TOO_BIG = b"552 5.3.4 Message size exceeds fixed limit\r\n"
S554_NO_RECIPIENTS = b"554 5.5.1 Error: no valid recipients\r\n"
S555_UNSUPPORTED = b"555 5.5.4 Unsupported option\r\n"


@dataclass
class SinkProfile:
    """What every session of one server shares: names, limits, capabilities.

    `capabilities` is plain data: the EHLO/LHLO keywords in the order they
    are advertised; "SIZE" is advertised with `max_size` (0 means no limit).
    """

    hostname: str = "loadkit-sink"
    lmtp: bool = False
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    max_size: int = DEFAULT_MAX_SIZE
    max_messages: int | None = None
    banner: bytes = field(init=False)
    helo_reply: bytes = field(init=False)
    ehlo_reply: bytes = field(init=False)

    def __post_init__(self) -> None:
        host = self.hostname
        self.banner = f"220 {host} {'LMTP' if self.lmtp else 'ESMTP'} loadkit\r\n".encode()
        self.helo_reply = f"250 {host}\r\n".encode()
        keywords = [host] + [
            (f"SIZE {self.max_size}" if self.max_size else "SIZE") if name == "SIZE" else name
            for name in self.capabilities
        ]
        lines = [f"250-{word}" for word in keywords[:-1]] + [f"250 {keywords[-1]}"]
        self.ehlo_reply = ("\r\n".join(lines) + "\r\n").encode()

    def advertises(self, keyword: str) -> bool:
        return keyword in self.capabilities


class SmtpSession:
    """One SMTP session's state; `feed` bytes in, get reply bytes out.

    The owner sends `profile.banner` first, sends whatever `feed` returns,
    and closes the connection once `closing` is true.
    """

    help_reply = b"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n"
    # Like Postfix (smtpd_helo_required = no), SMTP takes MAIL without HELO:
    # smtp-source -o relies on it. LMTP insists on LHLO (RFC 2033 4.1).
    need_greeting = None
    verbs: dict[bytes, object] = {}  # b"MAIL" -> SmtpSession.smtp_MAIL, filled below

    __slots__ = (
        "profile", "stats", "on_limit", "closing",
        "_buf", "_greeted", "_mail", "_rcpts", "_in_data", "_data_count", "_data_dots", "_skipping",
    )

    def __init__(self, profile: SinkProfile, stats: SinkStats, on_limit=None):
        self.profile = profile
        self.stats = stats
        self.on_limit = on_limit  # called once when stats.messages reaches profile.max_messages
        self.closing = False
        self._buf = b""
        self._greeted = False
        self._mail = False
        self._rcpts = 0
        self._in_data = False
        self._data_count = 0  # message bytes already scanned, dot-stuffing included
        self._data_dots = 0  # dots of dot-stuffing among them
        self._skipping = False  # discarding the rest of an overlong command line

    # -- the read loop's entry point -------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Take received bytes; return the replies to send now (b"" for none)."""
        buf = self._buf + data if self._buf else data
        self._buf = b""
        out = []
        start = 0
        while True:
            if self._in_data:
                start = self._scan_data(buf, start, out)
                if start < 0:  # the message goes on in the next read
                    break
                continue
            end = buf.find(b"\n", start)
            if end < 0:
                if len(buf) - start > MAX_LINE:
                    self._skipping = True
                elif start < len(buf) and not self._skipping:
                    self._buf = buf[start:]
                break
            if self._skipping or end - start >= MAX_LINE:
                self._skipping = False
                out.append(S500_LINE_TOO_LONG)
                start = end + 1
                continue
            line = buf[start:end - 1] if end > start and buf[end - 1] == 13 else buf[start:end]
            start = end + 1
            verb, _, argument = line.partition(b" ")
            handler = self.verbs.get(verb.upper())
            if handler is None:
                out.append(S500_UNRECOGNIZED)
                continue
            out.append(handler(self, argument))
            if self._in_data:
                if buf[start - 2:start] == b"\r\n":
                    start -= 2  # the command's own CRLF begins the data stream
                else:  # a bare LF ended DATA: give the stream its leading CRLF
                    buf = b"\r\n" + buf[start:]
                    start = 0
            elif self.closing:
                break
        return b"".join(out)

    def _scan_data(self, buf: bytes, start: int, out: list) -> int:
        """Consume message data; buf[start:start + 2] is the CRLF before it.

        Every dot that begins a line is either the terminator or a stuffed
        dot, so the scan visits dots with ``find(b".")`` (a memchr): a payload
        with few dots is crossed at memory speed. Past DOT_VISITS dots (prose)
        it hands over to ``find`` of the terminator plus ``count`` of stuffed
        dots, two C scans whatever the number of dots.

        Returns where the commands after the terminator start, or -1 when the
        message goes on: the last bytes are kept (at most four), from the
        CRLF before the first dot that cannot be judged yet.
        """
        n = len(buf)
        find = buf.find
        dots = 0
        visits = 0
        i = find(b".", start + 2)
        while i >= 0:
            if i + 3 > n:  # what follows this dot has not arrived yet
                keep = i - 2
                break
            if buf[i - 1] == 10 and buf[i - 2] == 13:
                if buf[i + 1] == 13 and buf[i + 2] == 10:
                    return self._message_end(i - 2, start, dots, out)
                dots += 1
            visits += 1
            if visits == DOT_VISITS:
                return self._scan_data_dense(buf, start, i + 1, dots, out)
            i = find(b".", i + 1)
        else:
            keep = n - 2  # a dot in the next read may begin a line here
        self._data_dots += dots
        self._data_count += keep - start
        self._buf = buf[keep:]
        return -1

    def _scan_data_dense(self, buf: bytes, start: int, first: int, dots: int, out: list) -> int:
        """`_scan_data` for the dots from buf[first:] on, when there are many."""
        end = buf.find(TERMINATOR, first - 2)
        if end >= 0:
            return self._message_end(end, start, dots + buf.count(LINE_START_DOT, first - 2, end), out)
        keep = len(buf) - 4
        self._data_dots += dots + buf.count(LINE_START_DOT, first - 2, keep + 2)
        self._data_count += keep - start
        self._buf = buf[keep:]
        return -1

    def _message_end(self, end: int, start: int, dots: int, out: list) -> int:
        """The terminator starts at buf[end]; count the message, return what follows it."""
        # The stream began with the CRLF before the data, and that CRLF stands
        # in for the final CRLF of the message: stream length == message length.
        size = self._data_count + end - start - self._data_dots - dots
        self._data_count = self._data_dots = 0
        self._in_data = False
        out.append(self.end_of_data(size))
        return end + 5

    def end_of_data(self, size: int) -> bytes:
        rcpts = self._rcpts
        self._mail = False
        self._rcpts = 0
        max_size = self.profile.max_size
        if max_size and size > max_size:
            return S552_TOO_BIG
        stats = self.stats
        stats.messages += 1
        stats.recipients += rcpts
        stats.bytes += size
        if stats.messages == self.profile.max_messages and self.on_limit is not None:
            self.on_limit()
        return S250_QUEUED

    def _reset(self) -> None:
        self._mail = False
        self._rcpts = 0

    # -- one method per verb ------------------------------------------------

    def smtp_HELO(self, argument: bytes) -> bytes:
        if not argument.strip():
            return S501_HELO
        self._greeted = True
        self._reset()
        return self.profile.helo_reply

    def smtp_EHLO(self, argument: bytes) -> bytes:
        if not argument.strip():
            return S501_EHLO
        self._greeted = True
        self._reset()
        return self.profile.ehlo_reply

    def smtp_MAIL(self, argument: bytes) -> bytes:
        if not self._greeted and self.need_greeting:
            return self.need_greeting
        if self._mail:
            return S503_NESTED_MAIL
        if argument[:5].upper() != b"FROM:":
            return S501_MAIL
        path, parameters = _split_path(argument[5:])
        if path is None:
            return S501_MAIL
        if parameters:
            problem = self._check_mail_parameters(parameters)
            if problem:
                return problem
        self._mail = True
        return S250_SENDER_OK

    def _check_mail_parameters(self, parameters: bytes) -> bytes | None:
        for parameter in parameters.split():
            name, _, value = parameter.partition(b"=")
            name = name.upper()
            if name == b"SIZE":
                if not value.isdigit():
                    return S501_SIZE
                if self.profile.max_size and int(value) > self.profile.max_size:
                    return S552_TOO_BIG
            elif name == b"BODY" and self.profile.advertises("8BITMIME"):
                if value.upper() not in (b"7BIT", b"8BITMIME"):
                    return S501_MAIL
            else:
                return S555_UNSUPPORTED
        return None

    def smtp_RCPT(self, argument: bytes) -> bytes:
        if not self._mail:
            return S503_NEED_MAIL
        if argument[:3].upper() != b"TO:":
            return S501_RCPT
        path, parameters = _split_path(argument[3:])
        if not path:  # the null path is a sender, never a recipient
            return S501_RCPT
        if parameters:
            return S555_UNSUPPORTED
        self._rcpts += 1
        return S250_RECIPIENT_OK

    def smtp_DATA(self, argument: bytes) -> bytes:
        if argument:
            return S501_NO_ARGUMENTS
        if not self._mail:
            return S503_NEED_MAIL
        if not self._rcpts:
            return self.no_recipients
        self._in_data = True
        return S354_DATA

    no_recipients = S554_NO_RECIPIENTS

    def smtp_RSET(self, argument: bytes) -> bytes:
        if argument:
            return S501_NO_ARGUMENTS
        self._reset()
        return S250_OK

    def smtp_NOOP(self, argument: bytes) -> bytes:
        return S250_OK

    def smtp_QUIT(self, argument: bytes) -> bytes:
        self.closing = True
        return S221_BYE

    def smtp_VRFY(self, argument: bytes) -> bytes:
        return S252_VRFY if argument.strip() else S501_VRFY

    def smtp_HELP(self, argument: bytes) -> bytes:
        return self.help_reply


class LmtpSession(SmtpSession):
    """LMTP: LHLO instead of HELO/EHLO, and one end-of-data reply per recipient."""

    help_reply = b"214 2.0.0 Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n"
    need_greeting = S503_LHLO_FIRST
    no_recipients = S503_NEED_RCPT  # RFC 2033 4.2: DATA without a good RCPT gets 503
    __slots__ = ()

    def smtp_LHLO(self, argument: bytes) -> bytes:
        if not argument.strip():
            return S501_LHLO
        self._greeted = True
        self._reset()
        return self.profile.ehlo_reply

    def end_of_data(self, size: int) -> bytes:
        rcpts = self._rcpts
        reply = SmtpSession.end_of_data(self, size)
        return reply * rcpts


def _split_path(text: bytes) -> tuple[bytes | None, bytes]:
    """``<address> PARAMS`` -> (address, params); address None when malformed.

    Like Postfix, a path without angle brackets is taken as it is.
    """
    text = text.lstrip(b" ")
    if text[:1] == b"<":
        close = text.find(b">")
        if close < 0:
            return None, b""
        return text[1:close], text[close + 1:].strip()
    address, _, parameters = text.partition(b" ")
    if not address:
        return None, b""
    return address, parameters.strip()


def _verb_table(cls, excluded: tuple[str, ...] = ()) -> dict[bytes, object]:
    return {
        name[5:].encode(): getattr(cls, name)
        for name in dir(cls)
        if name.startswith("smtp_") and name[5:] not in excluded
    }


SmtpSession.verbs = _verb_table(SmtpSession, excluded=("LHLO",))
LmtpSession.verbs = _verb_table(LmtpSession, excluded=("HELO", "EHLO"))
