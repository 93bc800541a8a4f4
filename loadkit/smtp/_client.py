"""An SMTP/LMTP client for load: gevent sockets, PIPELINING, per-phase times.

One `SmtpClient` holds at most one session at a time. `send()` runs one
transaction and opens the session first when there is none, so a user
that wants a new connection per message passes ``quit=True``.

With PIPELINING (RFC 2920) a transaction costs two round trips: MAIL, every
RCPT and DATA go out in one write and their replies are matched in order;
the content, the final dot (and QUIT, when the session ends with this
message) go out in a second write. LMTP (RFC 2033) reads one reply per
accepted recipient after the dot.

Timing: `timings` maps each phase to milliseconds. Phases are consecutive,
so they add up to the transaction's time: with pipelining, ``mail`` ends
when the MAIL reply arrives, ``rcpt`` when the last RCPT reply arrives,
``data`` when the DATA reply arrives.
"""

from __future__ import annotations

import re
import socket as std_socket
from time import perf_counter

from gevent import socket

from loadkit.smtp._errors import (
    SMTPConnectError,
    SMTPDisconnected,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
)
from loadkit.smtp._reply import MAX_LINE, REPLY_CODES, Reply, censored
from loadkit.targets import Target

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
    ):
        self.target = target
        self.lmtp = target.protocol == "lmtp"
        self.helo_name = helo_name
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.pipelining = pipelining
        self.capabilities: dict[str, str] = {}
        self.banner: Reply | None = None
        self._sock = None
        self._buf = b""  # received bytes; replies before _at are read already
        self._at = 0
        self._addresses = None  # (family, sockaddr) pairs of the target, resolved at the first connect
        self._pipelined = False
        self._needs_rset = False

    @property
    def connected(self) -> bool:
        return self._sock is not None

    # -- session ---------------------------------------------------------

    def connect(self, timings: dict | None = None) -> None:
        """Connect, read the banner, greet (EHLO, HELO on a 5xx; LHLO for LMTP)."""
        if timings is None:
            timings = {}
        self.close()
        mark = perf_counter()
        self._sock = self._open_socket()
        mark = _lap(timings, "connect", mark)
        self.banner = self._read_reply("banner")
        if self.banner.code != 220:
            self._fail(self.banner, "banner")
        mark = _lap(timings, "banner", mark)
        self._greet()
        _lap(timings, "helo", mark)

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
        except (std_socket.timeout, TimeoutError):
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
            self.capabilities = _capabilities(reply)
        elif 500 <= reply.code < 600 and not self.lmtp:
            self._write(b"HELO %s\r\n" % self.helo_name.encode(), "helo")
            reply = self._read_reply("helo")
            if reply.code != 250:
                self._fail(reply, "helo")
            self.capabilities = {}
        else:
            self._fail(reply, "helo")
        self._pipelined = self.pipelining and "PIPELINING" in self.capabilities

    def quit(self, timings: dict | None = None) -> None:
        """End the session politely; a server that hangs up first is fine too."""
        if self._sock is None:
            return
        mark = perf_counter()
        try:
            self._write(QUIT, "quit")
            self._read_reply("quit")
        except (SMTPDisconnected, SMTPTimeoutError, SMTPProtocolError):
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
    ) -> Delivery:
        """Send one message; connect first if there is no session.

        Raises SMTPReplyError when no recipient got the message, and
        SMTPTransportError when the connection failed (the session is then
        closed). With ``quit=True`` the session ends after this message
        (QUIT is pipelined behind the dot when the server allows it).
        """
        if timings is None:
            timings = {}
        if self._sock is None:
            self.connect(timings)
        mark = perf_counter()
        needs_rset, self._needs_rset = self._needs_rset, True  # until this one completes

        if self._pipelined:
            head = _envelope(sender, recipients)
            if needs_rset:
                self._write(RSET + head, "mail")
                self._expect_ok(self._read_reply("rset"), "rset")
            else:
                self._write(head, "mail")
            mail_reply = self._read_reply("mail")
            mark = _lap(timings, "mail", mark)
            rcpt_replies = [self._read_reply("rcpt") for _ in recipients]
            mark = _lap(timings, "rcpt", mark)
            data_reply = self._read_reply("data")
            mark = _lap(timings, "data", mark)
            if mail_reply.code == 250 and data_reply.code == 354 and rcpt_replies and _all_ok(rcpt_replies):
                accepted, errors = list(recipients), []  # the usual case, in short
            else:
                if data_reply.code == 354 and (mail_reply.code != 250 or not _any_ok(rcpt_replies)):
                    self.close()  # a server that wants content for a failed envelope: hang up, send nothing
                accepted, errors = self._check_envelope(recipients, mail_reply, rcpt_replies, data_reply)
        else:
            if needs_rset:
                self._expect_ok(self._call(RSET, "rset"), "rset")
            mail_reply = self._call(b"MAIL FROM:<%s>\r\n" % sender.encode(), "mail")
            self._expect_ok(mail_reply, "mail")
            mark = _lap(timings, "mail", mark)
            rcpt_replies = [self._call(b"RCPT TO:<%s>\r\n" % r.encode(), "rcpt") for r in recipients]
            mark = _lap(timings, "rcpt", mark)
            accepted, errors = self._check_envelope(recipients, mail_reply, rcpt_replies, None)
            data_reply = self._call(DATA, "data")
            mark = _lap(timings, "data", mark)
            if data_reply.code != 354:
                self._fail(data_reply, "data")

        pipelined_quit = quit and self._pipelined
        self._write(stuff_dots(message) + (DOT_QUIT if pipelined_quit else DOT), "end-of-data")
        if self.lmtp:
            delivered = 0
            reply = None
            for recipient in accepted:
                reply = self._read_reply("end-of-data")
                if 200 <= reply.code < 300:
                    delivered += 1
                else:
                    errors.append(SMTPReplyError(reply, "end-of-data", recipient))
            if not delivered:
                self._needs_rset = False
                raise errors[-1]
        else:
            reply = self._read_reply("end-of-data")
            if not 200 <= reply.code < 300:
                self._needs_rset = False  # the dot ends the transaction either way
                self._fail(reply, "end-of-data")
            delivered = len(accepted)
        self._needs_rset = False
        mark = _lap(timings, "end-of-data", mark)

        if quit:
            try:
                if not pipelined_quit:
                    self._write(QUIT, "quit")
                self._read_reply("quit")
            except (SMTPDisconnected, SMTPTimeoutError, SMTPProtocolError):
                pass  # the message is delivered; how the server hangs up does not change that
            self.close()
            _lap(timings, "quit", mark)
        return Delivery(accepted, delivered, errors, reply)

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
        except (std_socket.timeout, TimeoutError):
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
        while True:
            end = buf.find(b"\n", at)
            if end < 0:
                if len(buf) - at > MAX_LINE:
                    self.close()
                    raise SMTPProtocolError(f"reply line longer than {MAX_LINE} bytes", phase)
                data = self._recv(phase)
                buf = data if start == len(buf) else buf[start:] + data
                at -= start
                start = 0
                continue
            code = REPLY_CODES.get(buf[at:at + 3])
            if code is None or (end - at > MAX_LINE and len(buf[at:end].rstrip(b"\r")) > MAX_LINE):
                self.close()
                line = buf[at:end].rstrip(b"\r")
                raise SMTPProtocolError(f"not an SMTP reply: {line[:80]!r}", phase)
            if buf[at + 3:at + 4] == b"-":
                at = end + 1
                continue
            self._buf = buf
            self._at = end + 1
            return Reply(code, None, buf[start:end + 1])

    def _recv(self, phase: str) -> bytes:
        try:
            data = self._sock.recv(RECV_SIZE)
        except (std_socket.timeout, TimeoutError):
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


def _envelope(sender: str, recipients: list[str]) -> bytes:
    """MAIL, every RCPT and DATA: one pipelined command group."""
    if len(recipients) == 1:
        return b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (sender.encode(), recipients[0].encode())
    rcpts = b"".join([b"RCPT TO:<%s>\r\n" % recipient.encode() for recipient in recipients])
    return b"MAIL FROM:<%s>\r\n%sDATA\r\n" % (sender.encode(), rcpts)


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
