"""An SMTP/LMTP client for load: gevent sockets, PIPELINING, per-phase times.

One `SmtpClient` holds at most one session at a time. `send()` runs one
transaction and opens the session first when there is none, so a user
that wants a new connection per message passes ``quit=True``.

With PIPELINING (RFC 2920) a transaction costs two round trips: MAIL, every
RCPT and DATA go out in one write and their replies are matched in order;
the content, the final dot (and QUIT, when the session ends with this
message) go out in a second write. With BDAT there is no 354 to wait for,
so the chunk (and QUIT) goes out with the envelope. LMTP (RFC 2033) reads
one reply per accepted recipient after the dot or the last chunk.

ESMTP: STARTTLS (then EHLO again) or implicit TLS, AUTH (PLAIN, LOGIN,
CRAM-MD5), SIZE declared on MAIL (a message over the server's limit is
refused before it is sent), BODY=8BITMIME for 8-bit content, SMTPUTF8 for
UTF-8 addresses, DSN parameters, and CHUNKING (BDAT) when asked for. What a
message needs and the server does not offer is an SMTPNotSupportedError,
raised before anything of the message is sent.

A transaction reads like RFC 5321's sequence, one step each: RSET (only
after a transaction that failed before its end), the envelope (MAIL, every
RCPT, DATA unless BDAT), the content (body and dot, or one BDAT LAST chunk),
the final replies (one, or one per accepted recipient for LMTP), and QUIT
when the session ends with the message.

Timing: `timings` maps each phase (`loadkit.phases`) to milliseconds.
Phases are consecutive, so they add up to the transaction's time. A phase
is a round trip: with pipelining the envelope is one, ``envelope``;
without, ``mail``, ``rcpt`` and ``data`` are timed apart. ``rset`` is
RSET's own round trip. ``tls`` is the TLS handshake alone; ``starttls``
the STARTTLS command's round trip. An error names the command that
failed (``550 5.1.1 at RCPT``), pipelined or not.
"""

from __future__ import annotations

import re
import socket as std_socket
from time import perf_counter

from gevent import socket

from loadkit.smtp import _auth
from loadkit.smtp._errors import (
    SMTPConnectError,
    SMTPDisconnected,
    SMTPError,
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTransportError,
)
from loadkit.smtp._reply import MAX_LINE, MAX_REPLY, REPLY_CODES, Reply, censored
from loadkit.smtp._tls import client_context
from loadkit.urls import Target

RECV_SIZE = 65536
DOT = b".\r\n"
QUIT = b"QUIT\r\n"
DOT_QUIT = DOT + QUIT
RSET = b"RSET\r\n"
DATA = b"DATA\r\n"
_DOT_AFTER_NEWLINE = re.compile(rb"\n\.")  # a regex finds it 2x faster than `in` for a 2-byte needle


class Delivery:
    """What one transaction achieved.

    `errors` holds one SMTPReplyError per recipient that did not get the
    message (refused at RCPT, or, for LMTP, refused after the dot); when no
    recipient got it, `send()` raises instead of returning.
    """

    __slots__ = ("accepted", "delivered", "errors", "reply")

    def __init__(self, accepted: list[str], delivered: int, errors: list[SMTPReplyError], reply: Reply):
        self.accepted = accepted
        self.delivered = delivered
        self.errors = errors
        self.reply = reply

    @property
    def ok(self) -> bool:
        return not self.errors


def stuff_dots(message: bytes) -> bytes:
    """Dot-stuff (RFC 5321 4.5.2) and make sure the content ends with CRLF."""
    if message.startswith(b".") or _DOT_AFTER_NEWLINE.search(message) is not None:
        message = message.replace(b"\n.", b"\n..")
        if message.startswith(b"."):
            message = b"." + message
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message


class SmtpClient:
    """A client for one SMTP or LMTP target (see the module docstring)."""

    def __init__(
        self,
        target: Target,
        *,
        helo_name: str = "loadkit.test",
        connect_timeout: float = 10.0,
        timeout: float = 30.0,
        pipelining: bool = True,
        starttls: bool = False,
        tls_verify: bool = True,
        tls_context=None,
        username: str | None = None,
        password: str | None = None,
        auth_mechanism: str | None = None,
        chunking: bool = False,
        declare_size: bool = True,
        dsn_notify: str | None = None,
        dsn_ret: str | None = None,
        dsn_envid: str | None = None,
    ):
        self.target = target
        self.lmtp = target.protocol == "lmtp"
        self.helo_name = helo_name
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.pipelining = pipelining
        # "" plain, "starttls" (required), "implicit": the URL's scheme, or STARTTLS when asked for
        self.tls_mode = target.tls or ("starttls" if starttls else "")
        self.tls_verify = tls_verify
        self._tls_context = tls_context
        self.username = target.username if username is None else username
        self.password = (target.password if password is None else password) or ""
        self.auth_mechanism = auth_mechanism
        self.chunking = chunking
        self.declare_size = declare_size
        self.dsn_notify = dsn_notify
        self.dsn_ret = dsn_ret
        self.dsn_envid = dsn_envid
        self.capabilities: dict[str, str] = {}
        self._greeted: tuple[bytes | None, dict[str, str]] = (None, {})  # the last EHLO/LHLO reply and its capabilities
        self.banner: Reply | None = None
        self._sock = None
        self._buf = b""  # received bytes; replies before _at are read already
        self._at = 0
        self._addresses = None  # (family, sockaddr) pairs of the target, resolved at the first connect
        self._pipelined = False
        self._needs_rset = False  # a transaction failed before its end: RSET before the next one
        self._extensions = _Extensions()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    # -- session ---------------------------------------------------------

    def connect(self, timings: dict | None = None) -> None:
        """Open a session: connect, [TLS,] banner, greet (EHLO, HELO on a 5xx; LHLO for
        LMTP), [STARTTLS and greet again,] [AUTH]. Any failure closes the socket."""
        if timings is None:
            timings = {}
        self.close()
        try:
            mark = perf_counter()
            self._sock = self._open_socket()
            mark = _lap(timings, "connect", mark)
            if self.tls_mode == "implicit":
                self._handshake()
                mark = _lap(timings, "tls", mark)
            self.banner = self._read_reply("banner")
            if self.banner.code != 220:
                self._fail(self.banner, "banner")
            mark = _lap(timings, "banner", mark)
            self._greet()
            mark = _lap(timings, "helo", mark)
            if self.tls_mode == "starttls":
                self._starttls(timings, mark)
                mark = perf_counter()
            if self.username is not None:
                self._authenticate()
                _lap(timings, "auth", mark)
        except SMTPError:
            self.close()
            raise
        self._extensions = _Extensions.of(self)

    def _open_socket(self):
        target = self.target
        try:
            if target.is_unix:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.connect_timeout)
                sock.connect(target.path)
            else:
                sock = self._connect_inet()
        except std_socket.gaierror as error:
            raise SMTPConnectError(f"cannot resolve {target.host}: {error.strerror}", "connect") from None
        except TimeoutError:
            raise SMTPTimeoutError(f"no connection to {target} within {self.connect_timeout}s", "connect") from None
        except OSError as error:
            raise SMTPConnectError(f"cannot connect to {target}: {error.strerror or error}", "connect") from None
        sock.settimeout(self.timeout)
        self._buf = b""
        self._at = 0
        self._needs_rset = False
        return sock

    def _connect_inet(self):
        """Like socket.create_connection, but the name is resolved once per client, not per connection.

        gevent resolves in a thread pool, which costs more than the whole
        SMTP session of a new-connection-per-message run; an IP address is
        not resolved at all. A failed connect forgets the addresses, so the
        next one resolves the name again.
        """
        if self._addresses is None:
            self._addresses = _resolve(self.target.host, self.target.port)
        failure = None
        for family, address in self._addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.connect_timeout)
                sock.connect(address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as error:
                sock.close()
                failure = error
        self._addresses = None
        raise failure or OSError(f"no address for {self.target.host}")

    def _greet(self) -> None:
        verb = b"LHLO" if self.lmtp else b"EHLO"
        self._write(b"%s %s\r\n" % (verb, self.helo_name.encode()), "helo")
        reply = self._read_reply("helo")
        if reply.code == 250:
            if reply.wire != self._greeted[0]:  # a server says the same on every connection: parse it once
                self._greeted = (reply.wire, _capabilities(reply))
            self.capabilities = self._greeted[1]
        elif 500 <= reply.code < 600 and not self.lmtp:
            self._write(b"HELO %s\r\n" % self.helo_name.encode(), "helo")
            reply = self._read_reply("helo")
            if reply.code != 250:
                self._fail(reply, "helo")
            self.capabilities = {}
        else:
            self._fail(reply, "helo")
        self._pipelined = self.pipelining and "PIPELINING" in self.capabilities

    def _starttls(self, timings: dict, mark: float) -> None:
        if "STARTTLS" not in self.capabilities:
            raise SMTPNotSupportedError(f"{self.target} does not offer STARTTLS", "starttls", "STARTTLS")
        reply = self._call(b"STARTTLS\r\n", "starttls")
        if reply.code != 220:
            self._fail(reply, "starttls")
        mark = _lap(timings, "starttls", mark)
        self._handshake()
        mark = _lap(timings, "tls", mark)
        self._greet()  # RFC 3207: forget what was said in clear, ask again
        _lap(timings, "helo", mark)

    def _handshake(self) -> None:
        if self._tls_context is None:
            self._tls_context = client_context(self.tls_verify)
        self._buf, self._at = b"", 0  # nothing received in clear may be read as if it came over TLS
        try:
            self._sock = self._tls_context.wrap_socket(
                self._sock, server_hostname=None if self.target.is_unix else self.target.host
            )
        except TimeoutError:
            raise SMTPTimeoutError(f"TLS handshake timed out after {self.timeout}s", "tls") from None
        except OSError as error:  # ssl.SSLError is an OSError: a bad certificate lands here
            raise SMTPConnectError(f"TLS handshake with {self.target} failed: {error}", "tls") from None

    def _authenticate(self) -> None:
        offered = self.capabilities.get("AUTH")
        mechanism = _auth.choose(offered or "", self.auth_mechanism)
        if mechanism is None:
            wanted = self.auth_mechanism or "AUTH"
            raise SMTPNotSupportedError(
                f"{self.target} offers no {wanted}" + (f" (it offers {offered})" if offered else ""), "auth", wanted
            )
        exchange = _auth.MECHANISMS[mechanism](self.username, self.password)
        reply = self._call(next(exchange) + b"\r\n", "auth")
        while reply.code == 334:
            try:
                answer = exchange.send(_auth.decode_challenge(reply.text))
            except StopIteration:
                answer = b"*"  # the server wants more than the mechanism has: cancel (RFC 4954)
            reply = self._call(answer + b"\r\n", "auth")
        if reply.code != 235:
            self._fail(reply, "auth")

    def quit(self, timings: dict | None = None) -> None:
        """End the session politely; a server that hangs up or answers badly is fine too."""
        if self._sock is None:
            return
        mark = perf_counter()
        try:
            self._write(QUIT, "quit")
            self._read_reply("quit")
        except SMTPError:
            pass
        finally:
            self.close()
        if timings is not None:
            _lap(timings, "quit", mark)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    # -- transaction -----------------------------------------------------

    def send(
        self,
        sender: str,
        recipients: list[str],
        message: bytes,
        timings: dict | None = None,
        quit: bool = False,
        as_is: bool = False,
    ) -> Delivery:
        """Send one message; connect first if there is no session.

        Raises SMTPReplyError when no recipient got the message,
        SMTPNotSupportedError when the message needs an extension the server
        lacks (nothing is sent), and SMTPTransportError when the connection
        failed (the session is then closed). With ``quit=True`` the session
        ends after this message, delivered or not (QUIT is pipelined behind
        the content when the server allows it). ``as_is=True`` says the message
        needs no dot-stuffing and ends with CRLF (a `MessageFactory` says so in
        `ready_for_data`): the scan for dots, 2.6 us a 5 KiB message, is skipped.
        """
        if timings is None:
            timings = {}
        if self._sock is None:
            self.connect(timings)
        return self._transaction(sender, recipients, message, timings, quit, as_is)

    def _transaction(self, sender, recipients, message, timings, quit, as_is=False) -> Delivery:
        """RFC 5321's sequence, one step each: [RSET,] envelope, content, final replies, [QUIT]."""
        mark = perf_counter()
        pipelined = self._pipelined
        quit_behind = quit and pipelined  # QUIT rides behind the content when the server pipelines
        content_sent = False
        try:
            mail_params, rcpt_params = self._extensions.parameters(sender, recipients, message)
            if self._needs_rset:
                mark = self._rset(timings, mark)
            self._needs_rset = True  # until a final reply ends this transaction
            chunked = self._extensions.chunking
            if chunked:
                content = _bdat(message) + QUIT if quit_behind else _bdat(message)
            else:
                content = (message if as_is else stuff_dots(message)) + (DOT_QUIT if quit_behind else DOT)
            envelope = _envelope(sender, recipients, mail_params, rcpt_params)
            if pipelined:
                if chunked:  # no 354 to wait for: the content rides with the envelope
                    content_sent = True  # a write that fails closes the session
                    accepted, errors = self._pipelined_envelope(envelope + content, recipients, chunked)
                else:
                    accepted, errors = self._pipelined_envelope(envelope + DATA, recipients, chunked)
                mark = _lap(timings, "envelope", mark)
            else:
                accepted, errors, mark = self._envelope_step_by_step(envelope, recipients, chunked, timings, mark)
            if not content_sent:
                self._write(content, "end-of-data")
                content_sent = True
            reply, delivered = self._final_replies(accepted, errors)
            mark = _lap(timings, "end-of-data", mark)
        except SMTPError:
            if quit and self._sock is not None:
                if quit_behind and content_sent:
                    self.close()  # QUIT is on its way already
                else:
                    self.quit()
            raise
        if quit:
            self._quit_after(quit_behind)
            _lap(timings, "quit", mark)
        return Delivery(accepted, delivered, errors, reply)

    def _rset(self, timings: dict, mark: float) -> float:
        """RSET after a transaction that failed before its end: its own round trip, so its own phase."""
        self._expect_ok(self._call(RSET, "rset"), "rset")
        return _lap(timings, "rset", mark)

    def _pipelined_envelope(self, head: bytes, recipients: list[str], chunked: bool):
        """MAIL, every RCPT and DATA (or the BDAT content) in one write; their replies matched in order."""
        self._write(head, "mail")
        replies = self._read_group(["mail"] + ["rcpt"] * len(recipients) + ([] if chunked else ["data"]))
        mail_reply = replies[0]
        rcpt_replies = replies[1:1 + len(recipients)]
        data_reply = None if chunked else replies[-1]
        if mail_reply.code == 250 and rcpt_replies and _all_ok(rcpt_replies) and (chunked or data_reply.code == 354):
            return list(recipients), []  # the usual case, in short
        envelope_failed = mail_reply.code != 250 or not _any_ok(rcpt_replies)
        if envelope_failed and data_reply is not None and data_reply.code == 354:
            self.close()  # a server that wants content for a failed envelope: hang up, send nothing
        try:
            return self._check_envelope(recipients, mail_reply, rcpt_replies, data_reply)
        except SMTPError:
            if chunked and self._sock is not None:
                self._read_refused_chunk()
            raise

    def _read_refused_chunk(self) -> None:
        """The reply to a BDAT sent behind a failed envelope, so the next transaction's replies line up."""
        try:
            self._read_reply("end-of-data")
        except SMTPError:
            pass  # the envelope's failure is the one to report

    def _envelope_step_by_step(self, envelope: bytes, recipients: list[str], chunked: bool, timings: dict, mark: float):
        """MAIL, each RCPT, then DATA (not with BDAT), each waiting for its reply."""
        lines = envelope.split(b"\r\n")
        mail_reply = self._call(lines[0] + b"\r\n", "mail")
        self._expect_ok(mail_reply, "mail")
        mark = _lap(timings, "mail", mark)
        rcpt_replies = [self._call(line + b"\r\n", "rcpt") for line in lines[1:1 + len(recipients)]]
        mark = _lap(timings, "rcpt", mark)
        accepted, errors = self._check_envelope(recipients, mail_reply, rcpt_replies, None)
        if not chunked:
            data_reply = self._call(DATA, "data")
            mark = _lap(timings, "data", mark)
            if data_reply.code != 354:
                self._fail(data_reply, "data")
        return accepted, errors, mark

    def _final_replies(self, accepted: list[str], errors: list[SMTPReplyError]) -> tuple[Reply, int]:
        """The reply after the content, or for LMTP one per accepted recipient (RFC 2033 4.2).

        (last reply, recipients delivered); raises when none was delivered.
        Either way the transaction is over: the next one needs no RSET.
        """
        if self.lmtp:
            delivered = 0
            reply = None
            for recipient in accepted:
                reply = self._read_reply("end-of-data")
                if 200 <= reply.code < 300:
                    delivered += 1
                else:
                    errors.append(SMTPReplyError(reply, "end-of-data", recipient))
            self._needs_rset = False
            if not delivered:
                raise errors[-1]
            return reply, delivered
        reply = self._read_reply("end-of-data")
        self._needs_rset = False
        if not 200 <= reply.code < 300:
            self._fail(reply, "end-of-data")
        return reply, len(accepted)

    def _quit_after(self, quit_sent: bool) -> None:
        """End the session after a delivered message; how the server hangs up does not change the delivery."""
        try:
            if not quit_sent:
                self._write(QUIT, "quit")
            self._read_reply("quit")
        except SMTPError:
            pass
        self.close()

    def _read_group(self, phases: list[str]) -> list[Reply]:
        """The replies to a pipelined command group, in order.

        A server may answer 421 and hang up in the middle of a group (RFC
        5321 3.8): the 421 is the failure to report, not the hang-up after it.
        """
        replies = []
        try:
            for phase in phases:
                replies.append(self._read_reply(phase))
        except SMTPTransportError:
            for phase, reply in zip(phases, replies):
                if reply.code == 421:
                    self.close()
                    raise SMTPReplyError(reply, phase) from None
            raise
        return replies

    def _check_envelope(self, recipients, mail_reply, rcpt_replies, data_reply):
        """Accepted recipients and per-recipient errors; raise when none is left."""
        if mail_reply.code != 250:
            self._fail(mail_reply, "mail")
        accepted, errors = [], []
        for recipient, reply in zip(recipients, rcpt_replies):
            if 200 <= reply.code < 300:
                accepted.append(recipient)
            else:
                errors.append(SMTPReplyError(reply, "rcpt", recipient))
        if not accepted:
            if not errors:
                raise SMTPProtocolError("a transaction needs at least one recipient", "rcpt")
            if errors[0].code == 421:
                self.close()
            raise errors[0]
        if data_reply is not None and data_reply.code != 354:
            self._fail(data_reply, "data")
        return accepted, errors

    # -- wire ------------------------------------------------------------

    def _call(self, command: bytes, phase: str) -> Reply:
        self._write(command, phase)
        return self._read_reply(phase)

    def _expect_ok(self, reply: Reply, phase: str) -> None:
        if not 200 <= reply.code < 300:
            self._fail(reply, phase)

    def _fail(self, reply: Reply, phase: str):
        if reply.code == 421:  # the server is closing the session
            self.close()
        raise SMTPReplyError(reply, phase)

    def _write(self, data: bytes, phase: str) -> None:
        try:
            # One send() takes a whole command group or message almost always; gevent's
            # sendall would also ask the kernel for the buffer size on every call.
            sent = self._sock.send(data)
            if sent < len(data):
                self._sock.sendall(memoryview(data)[sent:])
        except TimeoutError:
            self.close()
            raise SMTPTimeoutError(f"write timed out after {self.timeout}s", phase) from None
        except OSError as error:
            self.close()
            raise SMTPDisconnected(f"connection lost: {error.strerror or error}", phase) from None
        except AttributeError:  # no socket: closed by an earlier failure
            raise SMTPDisconnected("not connected", phase) from None

    def _read_reply(self, phase: str) -> Reply:
        """The next reply; the buffer is walked by offset, and copied only when a reply is split across reads."""
        buf = self._buf
        start = at = self._at
        began = 0.0  # when the first piece of a reply split across reads came
        while True:
            end = buf.find(b"\n", at)
            if end < 0:
                if len(buf) - at > MAX_LINE + 1:  # a line of MAX_LINE may wait for its LF after the CR
                    self.close()
                    raise SMTPProtocolError(f"reply line longer than {MAX_LINE} bytes", phase)
                if start < len(buf):  # a reply dripping in must be whole within the timeout, not each byte
                    if not began:
                        began = perf_counter()
                    elif perf_counter() - began > self.timeout:
                        self.close()
                        raise SMTPTimeoutError(f"reply not complete within {self.timeout}s", phase)
                data = self._recv(phase)
                buf = data if start == len(buf) else buf[start:] + data
                at -= start
                start = 0
                continue
            code = REPLY_CODES.get(buf[at:at + 3])
            # Over MAX_LINE without its one CR, as the wait for a line's LF above counts it.
            if code is None or (end - at > MAX_LINE and end - at - (buf[end - 1] == 13) > MAX_LINE):
                self.close()
                line = buf[at:end].rstrip(b"\r")
                raise SMTPProtocolError(f"not an SMTP reply: {line[:80]!r}", phase)
            if buf[at + 3:at + 4] == b"-":
                if end - start > MAX_REPLY:
                    self.close()
                    raise SMTPProtocolError(f"reply longer than {MAX_REPLY} bytes", phase)
                at = end + 1
                continue
            self._buf = buf
            self._at = end + 1
            return Reply(code, None, buf[start:end + 1])

    def _recv(self, phase: str) -> bytes:
        try:
            data = self._sock.recv(RECV_SIZE)
        except TimeoutError:
            self.close()
            raise SMTPTimeoutError(f"no reply within {self.timeout}s", phase) from None
        except OSError as error:
            self.close()
            raise SMTPDisconnected(f"connection lost: {error.strerror or error}", phase) from None
        except AttributeError:
            raise SMTPDisconnected("not connected", phase) from None
        if not data:
            self.close()
            raise SMTPDisconnected("the server closed the connection", phase)
        return data


def _lap(timings: dict, phase: str, mark: float) -> float:
    now = perf_counter()
    timings[phase] = timings.get(phase, 0.0) + (now - mark) * 1000.0
    return now


def _any_ok(replies: list[Reply]) -> bool:
    return any(200 <= r.code < 300 for r in replies)


def _all_ok(replies: list[Reply]) -> bool:
    for reply in replies:
        if not 200 <= reply.code < 300:
            return False
    return True


def _envelope(sender: str, recipients: list[str], mail_params: bytes, rcpt_params: bytes) -> bytes:
    """MAIL and every RCPT, with their parameters."""
    if len(recipients) == 1:
        return b"MAIL FROM:<%s>%s\r\nRCPT TO:<%s>%s\r\n" % (
            sender.encode(), mail_params, recipients[0].encode(), rcpt_params
        )
    rcpts = b"".join([b"RCPT TO:<%s>%s\r\n" % (recipient.encode(), rcpt_params) for recipient in recipients])
    return b"MAIL FROM:<%s>%s\r\n%s" % (sender.encode(), mail_params, rcpts)


def _bdat(message: bytes) -> bytes:
    """The whole message as one last chunk (RFC 3030): no dot-stuffing, no final dot."""
    return b"BDAT %d LAST\r\n%s" % (len(message), message)


class _Extensions:
    """What the current session offers, turned into per-message MAIL/RCPT parameters.

    Built once per session; `parameters()` is on the send path, so the usual
    7-bit, ASCII-addressed message costs three C-level checks.
    """

    __slots__ = ("size", "size_limit", "eight_bit", "utf8", "chunking", "mail_fixed", "rcpt_fixed", "dsn_error")

    def __init__(self):
        self.size = self.eight_bit = self.utf8 = self.chunking = False
        self.size_limit = 0
        self.mail_fixed = self.rcpt_fixed = b""
        self.dsn_error = None

    @classmethod
    def of(cls, client: SmtpClient) -> "_Extensions":
        offered = client.capabilities
        extensions = cls()
        if "SIZE" in offered:
            extensions.size = client.declare_size
            limit = offered["SIZE"].strip()
            extensions.size_limit = int(limit) if limit.isascii() and limit.isdigit() else 0
        extensions.eight_bit = "8BITMIME" in offered
        extensions.utf8 = "SMTPUTF8" in offered
        extensions.chunking = client.chunking and "CHUNKING" in offered
        wants_dsn = client.dsn_notify or client.dsn_ret or client.dsn_envid
        if wants_dsn and "DSN" not in offered:
            extensions.dsn_error = SMTPNotSupportedError(f"{client.target} does not offer DSN", "mail", "DSN")
        elif wants_dsn:
            if client.dsn_ret:
                extensions.mail_fixed += b" RET=" + client.dsn_ret.upper().encode()
            if client.dsn_envid:
                extensions.mail_fixed += b" ENVID=" + client.dsn_envid.encode()
            if client.dsn_notify:
                extensions.rcpt_fixed = b" NOTIFY=" + client.dsn_notify.upper().encode()
        return extensions

    def parameters(self, sender: str, recipients: list[str], message: bytes) -> tuple[bytes, bytes]:
        if self.dsn_error is not None:
            raise self.dsn_error
        mail = self.mail_fixed
        if not message.isascii():
            if not self.eight_bit:
                raise SMTPNotSupportedError("8-bit content, but the server offers no 8BITMIME", "mail", "8BITMIME")
            mail = b" BODY=8BITMIME" + mail
        if not (sender.isascii() and all(recipient.isascii() for recipient in recipients)):
            if not self.utf8:
                raise SMTPNotSupportedError("UTF-8 addresses, but the server offers no SMTPUTF8", "mail", "SMTPUTF8")
            mail = b" SMTPUTF8" + mail
        if self.size_limit and len(message) > self.size_limit:
            raise SMTPNotSupportedError(
                f"a message of {len(message)} bytes is over the server's SIZE limit of {self.size_limit}",
                "mail", "SIZE", label="over the server's SIZE limit",
            )
        if self.size:
            mail = b" SIZE=%d" % len(message) + mail
        return mail, self.rcpt_fixed


def _resolve(host: str, port: int) -> list[tuple]:
    """(family, sockaddr) to try in order; an IP address needs no resolver."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            std_socket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, (host, port))]
    return [(family, address) for family, _, _, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)]


def _capabilities(reply: Reply) -> dict[str, str]:
    capabilities = {}
    for line in reply.raw_lines[1:]:
        keyword, _, params = censored(line).strip().partition(" ")
        if keyword:
            capabilities[keyword.upper()] = params
    return capabilities
