"""The sink's side of SMTP (RFC 5321) and LMTP (RFC 2033), free of I/O.

`SmtpSession.feed_list(data)` takes whatever bytes arrived and returns the
replies they call for, in order, so a pipelining client (RFC 2920) gets one
write per burst (`feed` joins them). One method per verb (``smtp_MAIL``,
``smtp_RCPT``, ...) returns the reply; `LmtpSession` changes only the
greeting verb and the end of data (one reply per accepted recipient).

Message data is never split into lines: the buffer is searched for the
``<CR><LF>.<CR><LF>`` terminator, only four bytes are carried over between
reads, and the dot-stuffing is counted, not undone. BDAT chunks (RFC 3030)
are counted by length.

The extensions: SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
DSN parameters (RFC 3461, accepted and ignored), CHUNKING, STARTTLS
(RFC 3207: the session asks its owner to start TLS, then forgets the EHLO)
and AUTH PLAIN/LOGIN/CRAM-MD5 (RFC 4954). Each is advertised and accepted
only when the profile (`loadkit.sink._profile`) has it. What the owner must do is signalled on the
session: `closing` (send the replies, then stop reading) and `starttls`
(send the replies, start TLS, call `tls_started`).
"""

from __future__ import annotations

import re
import time

from loadkit.sink._auth import SaslExchange
from loadkit.sink._stats import SinkStats

MAX_LINE = 4096  # longest command line accepted, CRLF included
DEFAULT_MAX_SIZE = 10240000  # Postfix's message_size_limit
# Advertised in this order (Postfix's); "SIZE" carries the limit, "AUTH" the mechanisms.
DEFAULT_CAPABILITIES = (
    "PIPELINING", "SIZE", "STARTTLS", "AUTH", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING",
)
KNOWN_CAPABILITIES = frozenset(DEFAULT_CAPABILITIES)

TERMINATOR = b"\r\n.\r\n"
LINE_START_DOT = b"\r\n."  # every data line starting with a dot lost one on the wire
DOT_VISITS = 8  # dots looked at one by one before scanning the rest in C

# What the bytes after a command line are: commands, message data, a BDAT chunk, a SASL answer.
COMMANDS, DATA, CHUNK, SASL = 0, 1, 2, 3

# Replies that never change. Those naming the host are built per profile.
S220_READY_FOR_TLS = b"220 2.0.0 Ready to start TLS\r\n"
S221_BYE = b"221 2.0.0 Bye\r\n"
S250_OK = b"250 2.0.0 Ok\r\n"
S250_SENDER_OK = b"250 2.1.0 Ok\r\n"
S250_RECIPIENT_OK = b"250 2.1.5 Ok\r\n"
S250_QUEUED = b"250 2.0.0 Ok: queued\r\n"
S250_CHUNK_OK = b"250 2.0.0 Ok: chunk received\r\n"
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
S501_BDAT = b"501 5.5.4 Syntax: BDAT count [LAST]\r\n"
S501_STARTTLS = b"501 5.5.4 Syntax: STARTTLS\r\n"
S501_NO_ARGUMENTS = b"501 5.5.4 Syntax: no arguments allowed\r\n"
S501_VRFY = b"501 5.5.4 Syntax: VRFY address\r\n"
S501_SIZE = b"501 5.5.4 Bad message size syntax\r\n"
S501_PARAMETER = b"501 5.5.4 Bad parameter value\r\n"
S503_LHLO_FIRST = b"503 5.5.1 Error: send LHLO first\r\n"
S503_NESTED_MAIL = b"503 5.5.1 Error: nested MAIL command\r\n"
S503_NEED_MAIL = b"503 5.5.1 Error: need MAIL command\r\n"
S503_NEED_RCPT = b"503 5.5.1 Error: need RCPT command\r\n"
S503_IN_TRANSACTION = b"503 5.5.1 Error: MAIL transaction in progress\r\n"
S503_MIXED_DATA = b"503 5.5.1 Error: DATA after BDAT in one transaction\r\n"
S503_TLS_ACTIVE = b"503 5.5.1 Error: TLS already active\r\n"
S503_AUTH_NOT_ENABLED = b"503 5.5.1 Error: authentication not enabled\r\n"
S503_AUTHENTICATED = b"503 5.5.1 Error: already authenticated\r\n"
S552_TOO_BIG = b"552 5.3.4 Message size exceeds fixed limit\r\n"
S553_NEED_SMTPUTF8 = b"553 5.6.7 Error: UTF-8 address without SMTPUTF8\r\n"
S554_NO_RECIPIENTS = b"554 5.5.1 Error: no valid recipients\r\n"
S555_UNSUPPORTED = b"555 5.5.4 Unsupported option\r\n"

_ENHANCED_CODE = re.compile(rb"^([2-5][0-9][0-9][ -])[245]\.[0-9]{1,3}\.[0-9]{1,3} ", re.MULTILINE)
_NOTIFY_WORDS = frozenset((b"SUCCESS", b"FAILURE", b"DELAY"))


def strip_enhanced_codes(replies: bytes) -> bytes:
    """The replies without their RFC 3463 codes, for a sink not advertising ENHANCEDSTATUSCODES."""
    return _ENHANCED_CODE.sub(rb"\1", replies)


class SmtpSession:
    """One SMTP session's state; `feed_list` bytes in, get replies out.

    `profile` is the `loadkit.sink.SinkProfile` its server's sessions share.
    The owner sends `profile.banner` first, sends whatever `feed_list`
    returns, and when `closing` is true either starts TLS (`starttls`) or
    closes the connection.
    """

    help_reply = b"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"
    # Like Postfix (smtpd_helo_required = no), SMTP takes MAIL without HELO:
    # smtp-source -o relies on it. LMTP insists on LHLO (RFC 2033 4.1).
    need_greeting = None
    no_recipients = S554_NO_RECIPIENTS

    __slots__ = (
        "profile", "stats", "on_limit", "closing", "starttls", "tls", "peer", "verbs",
        "_buf", "_greeted", "_mail", "_rcpts", "_utf8", "_in_data", "_data_count", "_data_dots", "_skipping",
        "_ehlo_reply", "_authenticated", "_sasl", "_capture", "_capture_left", "_capture_stuffed", "_capture_headers",
        "_chunking", "_chunk_left", "_chunk_last", "_chunk_error", "_chunked_size",
        "_sender", "_recipients", "_captured", "_capture_refused",
    )

    def __init__(self, profile, stats: SinkStats, on_limit=None, peer: str = "", tls: bool = False):
        self.profile = profile
        self.stats = stats
        self.on_limit = on_limit  # called once when stats.messages reaches profile.max_messages
        self.peer = peer  # the client's address, for greylisting
        self.verbs = profile.verbs
        self.closing = False
        self.starttls = False
        self.tls = tls
        self._buf = b""
        self._greeted = False
        self._mail = False
        self._rcpts = 0
        self._utf8 = False  # this transaction said SMTPUTF8
        self._in_data = COMMANDS
        self._data_count = 0  # message bytes already scanned, dot-stuffing included
        self._data_dots = 0  # dots of dot-stuffing among them
        self._skipping = False  # discarding the rest of an overlong command line
        self._ehlo_reply = profile.ehlo_tls if tls else profile.ehlo_plain
        self._authenticated = None
        self._sasl = None
        self._capture = None  # pieces of the message stream, when a full session wants them
        self._captured = 0  # bytes of them held against the sink's buffer budget
        self._capture_refused = None  # the reply ending a message past that budget
        self._chunking = False  # BDAT seen in this transaction
        self._chunked_size = 0

    # -- the read loop's entry points --------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Take received bytes; return the replies to send now, joined (b"" for none)."""
        replies = b"".join([item if item.__class__ is bytes else item.reply for item in self.feed_list(data)])
        return replies if self.profile.enhanced_codes else strip_enhanced_codes(replies)

    def feed_list(self, data: bytes) -> list:
        """Take received bytes; return the replies to send now, in order.

        Replies are bytes; a full session with faults may also return
        `loadkit.sink._faults.SlowReply` items for its owner to act on.
        """
        buf = self._buf + data if self._buf else data
        self._buf = b""
        out = []
        start = 0
        while True:
            mode = self._in_data
            if mode:
                if mode == DATA:
                    start = self._scan_data(buf, start, out)
                elif mode == CHUNK:
                    start = self._scan_chunk(buf, start, out)
                else:
                    start = self._sasl_line(buf, start, out)
                if start < 0:  # more of it in the next read
                    break
                if self.closing:
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
            if self._in_data == DATA:
                if buf[start - 2:start] == b"\r\n":
                    start -= 2  # the command's own CRLF begins the data stream
                else:  # a bare LF ended DATA: give the stream its leading CRLF
                    buf = b"\r\n" + buf[start:]
                    start = 0
            elif self.closing:
                break
        return out

    # -- message data -----------------------------------------------------------

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
                    return self._message_end(buf, i - 2, start, dots, out)
                dots += 1
            visits += 1
            if visits == DOT_VISITS:
                return self._scan_data_dense(buf, start, i + 1, dots, out)
            i = find(b".", i + 1)
        else:
            keep = n - 2  # a dot in the next read may begin a line here
        self._data_dots += dots
        self._data_count += keep - start
        if self._capture is not None:
            self.capture(buf, start, keep)
        self._buf = buf[keep:]
        return -1

    def _scan_data_dense(self, buf: bytes, start: int, first: int, dots: int, out: list) -> int:
        """`_scan_data` for the dots from buf[first:] on, when there are many."""
        end = buf.find(TERMINATOR, first - 2)
        if end >= 0:
            return self._message_end(buf, end, start, dots + buf.count(LINE_START_DOT, first - 2, end), out)
        keep = len(buf) - 4
        self._data_dots += dots + buf.count(LINE_START_DOT, first - 2, keep + 2)
        self._data_count += keep - start
        if self._capture is not None:
            self.capture(buf, start, keep)
        self._buf = buf[keep:]
        return -1

    def _message_end(self, buf: bytes, end: int, start: int, dots: int, out: list) -> int:
        """The terminator starts at buf[end]; count the message, return what follows it."""
        # The stream began with the CRLF before the data, and that CRLF stands
        # in for the final CRLF of the message: stream length == message length.
        size = self._data_count + end - start - self._data_dots - dots
        if self._capture is not None:
            self.capture(buf, start, end + 2)
        self._data_count = self._data_dots = 0
        self._in_data = COMMANDS
        out.append(self.end_of_data(size))
        return end + 5

    def _scan_chunk(self, buf: bytes, start: int, out: list) -> int:
        """Consume a BDAT chunk: exactly the announced number of bytes."""
        left = self._chunk_left
        end = start + left
        if end > len(buf):
            end = len(buf)
        if self._capture is not None:
            self.capture(buf, start, end)
        self._chunked_size += end - start
        self._chunk_left = left - (end - start)
        if self._chunk_left:
            return -1
        self._in_data = COMMANDS
        out.append(self._chunk_done())
        return end

    def capture(self, buf: bytes, start: int, end: int) -> None:
        """Keep buf[start:end] of the message stream (full sessions decide how much)."""
        self._capture.append(buf[start:end])

    def _chunk_done(self) -> bytes:
        error = self._chunk_error
        last = self._chunk_last
        if error is not None:
            if last:
                self.drop_capture()
            return error
        max_size = self.profile.max_size
        if max_size and self._chunked_size > max_size:
            self._end_transaction()
            return S552_TOO_BIG
        if not last:
            return S250_CHUNK_OK
        size = self._chunked_size
        self._chunking = False
        self._chunked_size = 0
        return self.end_of_data(size)

    def end_of_data(self, size: int) -> bytes:
        rcpts = self._rcpts
        self._mail = False
        self._rcpts = 0
        self._utf8 = False
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

    def _end_transaction(self) -> None:
        self._mail = False
        self._rcpts = 0
        self._utf8 = False
        self._chunking = False
        self._chunked_size = 0
        self.drop_capture()

    def drop_capture(self) -> None:
        """Forget what was kept of the message (full sessions also give its memory back)."""
        self._capture = None

    def end(self) -> None:
        """The connection is gone: give back what the session holds."""
        self.drop_capture()

    # -- STARTTLS and AUTH ----------------------------------------------------------

    def tls_started(self) -> None:
        """The owner finished the TLS handshake: forget everything learnt before (RFC 3207 4.2)."""
        self.tls = True
        self.starttls = False
        self.closing = False
        self._buf = b""
        self._greeted = False
        self._authenticated = None
        self._end_transaction()
        self._ehlo_reply = self.profile.ehlo_tls

    def _sasl_line(self, buf: bytes, start: int, out: list) -> int:
        """One client answer of an AUTH exchange."""
        end = buf.find(b"\n", start)
        if end < 0:
            if len(buf) - start > MAX_LINE:
                self._sasl = None
                self._in_data = COMMANDS
                self._skipping = True
            elif start < len(buf):
                self._buf = buf[start:]
            return -1
        line = buf[start:end].rstrip(b"\r")
        reply = self._sasl.answer(line)
        if self._sasl.done:
            self._finish_auth()
        out.append(reply)
        return end + 1

    def _finish_auth(self) -> None:
        exchange = self._sasl
        self._sasl = None
        self._in_data = COMMANDS
        if exchange.user is not None:
            self._authenticated = exchange.user
            self.stats.auth_ok += 1
        elif exchange.failed:
            self.stats.auth_failed += 1

    # -- one method per verb ------------------------------------------------

    def smtp_HELO(self, argument: bytes) -> bytes:
        if not argument.strip():
            return S501_HELO
        self._greeted = True
        self._end_transaction()
        return self.profile.helo_reply

    def smtp_EHLO(self, argument: bytes) -> bytes:
        if not argument.strip():
            return S501_EHLO
        self._greeted = True
        self._end_transaction()
        return self._ehlo_reply

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
            problem = self._mail_parameters(parameters)
            if problem:
                return problem
        if not path.isascii() and not self._utf8:
            return S553_NEED_SMTPUTF8
        self._mail = True
        return S250_SENDER_OK

    def _mail_parameters(self, parameters: bytes) -> bytes | None:
        advertises = self.profile.advertises
        utf8 = False
        for parameter in parameters.split():
            name, _, value = parameter.partition(b"=")
            name = name.upper()
            if name == b"SIZE" and advertises("SIZE"):
                if not value.isdigit():
                    return S501_SIZE
                if self.profile.max_size and int(value) > self.profile.max_size:
                    return S552_TOO_BIG
            elif name == b"BODY" and advertises("8BITMIME"):
                if value.upper() not in (b"7BIT", b"8BITMIME"):
                    return S501_PARAMETER
            elif name == b"SMTPUTF8" and advertises("SMTPUTF8"):
                if value:
                    return S501_PARAMETER
                utf8 = True
            elif name == b"RET" and advertises("DSN"):
                if value.upper() not in (b"FULL", b"HDRS"):
                    return S501_PARAMETER
            elif name == b"ENVID" and advertises("DSN"):
                if not value or len(value) > 100:
                    return S501_PARAMETER
            elif name == b"AUTH" and self.profile.offers_auth(self.tls):
                if not value:
                    return S501_PARAMETER
            else:
                return S555_UNSUPPORTED
        self._utf8 = utf8
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
            problem = self._rcpt_parameters(parameters)
            if problem:
                return problem
        if not path.isascii() and not self._utf8:
            return S553_NEED_SMTPUTF8
        self._rcpts += 1
        return S250_RECIPIENT_OK

    def _rcpt_parameters(self, parameters: bytes) -> bytes | None:
        if not self.profile.advertises("DSN"):
            return S555_UNSUPPORTED
        for parameter in parameters.split():
            name, _, value = parameter.partition(b"=")
            name = name.upper()
            if name == b"NOTIFY":
                words = set(value.upper().split(b","))
                if words != {b"NEVER"} and not (words and words <= _NOTIFY_WORDS):
                    return S501_PARAMETER
            elif name == b"ORCPT":
                kind, semicolon, address = value.partition(b";")
                if not (kind and semicolon and address):
                    return S501_PARAMETER
            else:
                return S555_UNSUPPORTED
        return None

    def smtp_DATA(self, argument: bytes) -> bytes:
        if argument:
            return S501_NO_ARGUMENTS
        if not self._mail:
            return S503_NEED_MAIL
        if not self._rcpts:
            return self.no_recipients
        if self._chunking:
            return S503_MIXED_DATA
        self._in_data = DATA
        return S354_DATA

    def smtp_BDAT(self, argument: bytes) -> bytes:
        count, _, last = argument.strip().partition(b" ")
        last = last.strip().upper()
        if not count.isdigit() or last not in (b"", b"LAST"):
            return S501_BDAT
        if not self._mail:
            self._chunk_error = S503_NEED_MAIL
        elif not self._rcpts:
            self._chunk_error = self.no_recipients
        else:
            self._chunk_error = None
            self._chunking = True
        self._chunk_last = bool(last)
        self._chunk_left = int(count)
        if not self._chunk_left:
            return self._chunk_done()
        self._in_data = CHUNK
        return b""  # the reply comes once the chunk is in

    def refuse_chunk(self, argument: bytes, reply: bytes) -> bytes:
        """BDAT answered with `reply` (a fault), its chunk read all the same to stay in step."""
        count, _, last = argument.strip().partition(b" ")
        if not count.isdigit():
            return reply
        self._chunk_error = reply
        self._chunk_last = last.strip().upper() == b"LAST"
        self._chunk_left = int(count)
        if not self._chunk_left:
            return self._chunk_done()
        self._in_data = CHUNK
        return b""

    def smtp_RSET(self, argument: bytes) -> bytes:
        if argument:
            return S501_NO_ARGUMENTS
        self._end_transaction()
        return S250_OK

    def smtp_NOOP(self, argument: bytes) -> bytes:
        # ``NOOP clock`` asks for the sink's clock, so a sender on another host can
        # measure the offset between its clock and the one stamping arrivals in the
        # trace log (`loadkit.e2e._clock`). Any other NOOP gets the usual reply.
        if argument.strip().lower() == b"clock":
            return b"250 2.0.0 Ok clock=%.6f\r\n" % time.time()
        return S250_OK

    def smtp_QUIT(self, argument: bytes) -> bytes:
        self.closing = True
        return S221_BYE

    def smtp_VRFY(self, argument: bytes) -> bytes:
        return S252_VRFY if argument.strip() else S501_VRFY

    def smtp_HELP(self, argument: bytes) -> bytes:
        return self.help_reply

    def smtp_STARTTLS(self, argument: bytes) -> bytes:
        if argument:
            return S501_STARTTLS
        if self.tls:
            return S503_TLS_ACTIVE
        if self._mail:
            return S503_IN_TRANSACTION
        self.starttls = True
        self.closing = True  # nothing after STARTTLS in this read is ours to answer (RFC 3207 4.2)
        return S220_READY_FOR_TLS

    def smtp_AUTH(self, argument: bytes) -> bytes:
        profile = self.profile
        if not profile.offers_auth(self.tls):
            return S503_AUTH_NOT_ENABLED
        if self._authenticated is not None:
            return S503_AUTHENTICATED
        if self._mail:
            return S503_IN_TRANSACTION
        self._sasl = exchange = SaslExchange(profile.authenticator, profile.hostname)
        reply = exchange.start(argument)
        if exchange.done:
            self._finish_auth()
        else:
            self._in_data = SASL
        return reply


class LmtpSession(SmtpSession):
    """LMTP: LHLO instead of HELO/EHLO, and one end-of-data reply per recipient."""

    help_reply = b"214 2.0.0 Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"
    need_greeting = S503_LHLO_FIRST
    no_recipients = S503_NEED_RCPT  # RFC 2033 4.2: DATA without a good RCPT gets 503
    __slots__ = ()

    def smtp_LHLO(self, argument: bytes) -> bytes:
        if not argument.strip():
            return S501_LHLO
        self._greeted = True
        self._end_transaction()
        return self._ehlo_reply

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


def split_path(text: bytes) -> bytes | None:
    """The address of a MAIL FROM:/RCPT TO: argument after the colon (None when malformed)."""
    return _split_path(text)[0]
