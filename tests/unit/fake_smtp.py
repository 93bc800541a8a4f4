"""A scripted SMTP/LMTP server for the client's unit tests.

`FakeSmtpServer` listens on 127.0.0.1 port 0 (or on a UNIX socket), sends a
banner, records every chunk it receives and every reply it sends, in order,
and answers each command line from a script: ``respond(line, session)``
returns the reply for that line, or None for the ordinary answer. After the
content of a message the script is asked about the line ``b"."``.

A reply is one of:

- ``bytes``: sent in one write;
- ``Split(b"25", b"0 Ok\\r\\n")``: sent as several writes with a pause between
  (its last part may be CLOSE or SILENT);
- ``Hangup(reply)``: the reply, then the server closes the connection;
- ``CLOSE``: the server closes the connection without replying;
- ``SILENT``: the server never answers again (for timeouts).

BDAT (RFC 3030): after a ``BDAT n [LAST]`` line the server reads exactly n
bytes of chunk before it answers; `Session.chunks` holds each chunk as
received, and the content of a LAST chunk's accepted transaction joins
`Session.messages`. TLS: ``tls="starttls"`` answers STARTTLS with 220 and
then speaks TLS, ``tls="implicit"`` speaks TLS from the first byte; both
with a self-signed certificate made once per process. AUTH is accepted.

Two pytest fixtures come with it, `serve` (servers stopped after the test)
and `client_for` (clients with short timeouts, closed after it); a test
module takes them as ``serve, client_for = fake_smtp.serve, fake_smtp.client_for``.

Each connection is a `Session` in `server.sessions`. It runs in its own
thread with plain blocking sockets, so it works whether or not gevent has
monkey-patched the process (it then runs as a greenlet instead).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import select
import socket
import ssl
import tempfile
import threading
import time
from contextlib import ExitStack
from functools import cache

import pytest

from loadkit.smtp import SmtpClient
from loadkit.urls import Target

BANNER = b"220 fake.test ESMTP\r\n"
EHLO_PIPELINING = b"250-fake.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 ENHANCEDSTATUSCODES\r\n"
EHLO_PLAIN = b"250-fake.test\r\n250-SIZE 10240000\r\n250 ENHANCEDSTATUSCODES\r\n"


def ehlo_offering(*extensions: str, pipelining: bool = True) -> bytes:
    """An EHLO reply offering these extensions (``"SIZE 100"``, ``"CHUNKING"``, ...) and PIPELINING unless told."""
    lines = ["fake.test", *(["PIPELINING"] if pipelining else []), *extensions, "ENHANCEDSTATUSCODES"]
    return b"".join(b"250-%s\r\n" % line.encode() for line in lines[:-1]) + b"250 %s\r\n" % lines[-1].encode()

QUEUED = b"250 2.0.0 Ok: queued as FAKE\r\n"
IDLE_LIMIT = 5.0  # a session nobody talks to ends by itself: no test can hang on it


class _Action:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


CLOSE = _Action("CLOSE")
SILENT = _Action("SILENT")


class Split(tuple):
    """A reply sent as several writes, so the client must join several recv()s."""

    def __new__(cls, *chunks: bytes):
        return super().__new__(cls, chunks)


class Hangup:
    """Send `reply`, then close the connection (what a server does after 421)."""

    def __init__(self, reply: bytes):
        self.reply = reply


class Session:
    """What happened on one connection, as the server saw it."""

    def __init__(self, index: int):
        self.index = index
        self.events: list[tuple[str, bytes]] = []  # ("recv", chunk) / ("send", chunk), in order
        self.commands: list[bytes] = []  # each command line without CRLF; b"." for end of content
        self.messages: list[bytes] = []  # content as received (still dot-stuffed), without the dot line
        self.chunks: list[tuple[int, bool, bytes]] = []  # BDAT (declared size, LAST, chunk as received)
        self.tls = False  # the session speaks TLS now
        self.in_transaction = False  # MAIL was accepted
        self.accepted: list[bytes] = []  # recipients accepted in the current transaction
        self.greeted = False
        self.lmtp = False
        self.in_data = False
        self.client_closed = False  # the client hung up (recv returned b"")
        self.ended = threading.Event()
        self._pending = b""

    @property
    def received(self) -> bytes:
        return b"".join(chunk for kind, chunk in self.events if kind == "recv")

    def exchanges(self) -> list[tuple[bytes, bytes]]:
        """(bytes received since the previous reply, reply) for each reply sent, banner first."""
        pairs, received = [], b""
        for kind, chunk in self.events:
            if kind == "recv":
                received += chunk
            else:
                pairs.append((received, chunk))
                received = b""
        return pairs

    def verbs(self) -> list[bytes]:
        return [line.split(b" ", 1)[0].upper() for line in self.commands]


def default_reply(line: bytes, session: Session, ehlo: bytes = EHLO_PIPELINING) -> bytes:
    """A well-behaved server's answer to `line` (Postfix's wording)."""
    verb = line.split(b" ", 1)[0].upper()
    if line == b".":
        if session.lmtp:
            return b"".join(b"250 2.0.0 <%s> Ok\r\n" % rcpt for rcpt in session.accepted)
        return QUEUED
    if verb in (b"EHLO", b"LHLO"):
        return ehlo
    if verb == b"HELO":
        return b"250 fake.test\r\n"
    if verb in (b"MAIL", b"RCPT", b"DATA", b"BDAT") and not session.greeted:
        return b"503 5.5.1 Error: send HELO/EHLO first\r\n"
    if verb == b"STARTTLS":
        return b"220 2.0.0 Ready to start TLS\r\n"
    if verb == b"AUTH":
        return b"235 2.7.0 Authentication successful\r\n"
    if verb == b"BDAT":
        if not session.accepted:
            return b"554 5.5.1 Error: no valid recipients\r\n"
        if not line.upper().endswith(b" LAST"):
            return b"250 2.0.0 Ok: %d bytes\r\n" % session.chunks[-1][0]
        if session.lmtp:
            return b"".join(b"250 2.0.0 <%s> Ok\r\n" % rcpt for rcpt in session.accepted)
        return QUEUED
    if verb == b"MAIL":
        return b"503 5.5.1 Error: nested MAIL command\r\n" if session.in_transaction else b"250 2.1.0 Ok\r\n"
    if verb == b"RCPT":
        return b"250 2.1.5 Ok\r\n" if session.in_transaction else b"503 5.5.1 Error: need MAIL command\r\n"
    if verb == b"DATA":
        if not session.accepted:
            return b"554 5.5.1 Error: no valid recipients\r\n"
        return b"354 End data with <CR><LF>.<CR><LF>\r\n"
    if verb in (b"RSET", b"NOOP"):
        return b"250 2.0.0 Ok\r\n"
    if verb == b"QUIT":
        return b"221 2.0.0 Bye\r\n"
    return b"502 5.5.2 Error: command not recognized\r\n"


class FakeSmtpServer:
    """See the module docstring. Use as a context manager."""

    def __init__(
        self,
        respond=None,
        *,
        banner=BANNER,
        ehlo: bytes = EHLO_PIPELINING,
        unix_path: str | None = None,
        reply_delay: float = 0.0,
        split_pause: float = 0.005,
        tls: str = "",
    ):
        self.respond = respond
        self.banner = banner  # a reply, or a function of the Session returning one
        self.ehlo = ehlo
        self.unix_path = unix_path
        self.reply_delay = reply_delay  # wait, then take in what else arrived, before each reply
        self.split_pause = split_pause
        self.tls = tls  # "", "starttls" or "implicit"
        self.sessions: list[Session] = []
        self._stopping = False
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        if unix_path:
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(unix_path)
        else:
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = None if unix_path else self._listener.getsockname()[1]

    def target(self, protocol: str = "smtp") -> Target:
        if self.unix_path:
            return Target(protocol, path=self.unix_path)
        return Target(protocol, host="127.0.0.1", port=self.port, tls="implicit" if self.tls == "implicit" else "")

    def ended_session(self, index: int = 0, timeout: float = 2.0) -> Session:
        """The `index`-th session, once it has ended (bounded wait).

        An open session can be read from `sessions` directly: the server
        records what it received before it answers.
        """
        deadline = time.monotonic() + timeout
        while len(self.sessions) <= index and time.monotonic() < deadline:
            time.sleep(0.005)
        session = self.sessions[index]
        session.ended.wait(max(0.0, deadline - time.monotonic()))
        return session

    def __enter__(self) -> FakeSmtpServer:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stopping = True
        self._wake_accept_loop()
        for sock in list(self._sockets):
            _hang_up(sock)
        for thread in list(self._threads):
            thread.join(2.0)
        self._listener.close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)

    # -- serving ---------------------------------------------------------

    def _wake_accept_loop(self) -> None:
        family = socket.AF_UNIX if self.unix_path else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as waker:
                waker.settimeout(1.0)
                waker.connect(self.unix_path or ("127.0.0.1", self.port))
        except OSError:
            pass

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            if self._stopping:
                sock.close()
                return
            if not self.unix_path:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each reply leaves at once
            session = Session(len(self.sessions))
            self.sessions.append(session)
            self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock, session), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket, session: Session) -> None:
        sock.settimeout(IDLE_LIMIT)
        try:
            if self.tls == "implicit":
                sock = _server_context().wrap_socket(sock, server_side=True)
                session.tls = True
            banner = self.banner(session) if callable(self.banner) else self.banner
            if not self._reply(sock, session, banner):
                return
            while True:
                line = self._next_line(sock, session)
                if line is None:
                    return
                session.commands.append(line)
                reply = self.respond(line, session) if self.respond else None
                if reply is None:
                    reply = default_reply(line, session, self.ehlo)
                self._track(line, session, reply)
                if not self._reply(sock, session, reply) or line.upper() == b"QUIT":
                    return
                if line.upper() == b"STARTTLS" and isinstance(reply, bytes) and reply[:3] == b"220":
                    sock = _server_context().wrap_socket(sock, server_side=True)
                    session.tls, session.greeted, session._pending = True, False, b""
        except OSError:
            return
        finally:
            _hang_up(sock)
            session.ended.set()

    def _next_line(self, sock: socket.socket, session: Session) -> bytes | None:
        """The next command line, or b"." once a whole message content has arrived."""
        while True:
            buf = session._pending
            if session.in_data:
                if buf.startswith(b".\r\n"):
                    content, rest = b"", buf[3:]
                else:
                    end = buf.find(b"\r\n.\r\n")
                    content, rest = (buf[:end + 2], buf[end + 5:]) if end >= 0 else (None, None)
                if content is not None:
                    session.messages.append(content)
                    session.in_data = False
                    session._pending = rest
                    return b"."
            else:
                end = buf.find(b"\r\n")
                if end >= 0 and buf[:5].upper() == b"BDAT ":
                    size = int(buf[5:end].split()[0])
                    if len(buf) - end - 2 >= size:  # the whole chunk is in: answer now
                        chunk = buf[end + 2:end + 2 + size]
                        last = buf[:end].upper().endswith(b" LAST")
                        session.chunks.append((size, last, chunk))
                        if last and session.accepted:
                            session.messages.append(b"".join(c for _, _, c in self._open_chunks(session)))
                        session._pending = buf[end + 2 + size:]
                        return buf[:end]
                elif end >= 0:
                    session._pending = buf[end + 2:]
                    return buf[:end]
            if not self._receive(sock, session):
                return None

    @staticmethod
    def _open_chunks(session: Session) -> list[tuple[int, bool, bytes]]:
        """The chunks of the current BDAT transaction: those since the previous LAST."""
        chunks = []
        for chunk in reversed(session.chunks[:-1]):
            if chunk[1]:
                break
            chunks.append(chunk)
        return [*reversed(chunks), session.chunks[-1]]

    def _receive(self, sock: socket.socket, session: Session) -> bool:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False
        if not chunk:
            session.client_closed = True
            return False
        session.events.append(("recv", chunk))
        session._pending += chunk
        return True

    def _track(self, line: bytes, session: Session, reply) -> None:
        """Keep the transaction state a real server would keep, from what is answered."""
        first = reply.reply if isinstance(reply, Hangup) else reply
        first = b"".join(first) if isinstance(first, tuple) else first
        positive = isinstance(first, bytes) and first[:1] in (b"2", b"3")
        verb = line.split(b" ", 1)[0].upper()
        if verb in (b"EHLO", b"HELO", b"LHLO") and positive:
            session.greeted = True
            session.lmtp = verb == b"LHLO"
        elif verb == b"MAIL" and positive:
            session.in_transaction = True
            session.accepted = []
        elif verb == b"RSET" or line == b"." or (verb == b"BDAT" and line.upper().endswith(b" LAST")):
            session.in_transaction = False
            session.accepted = []
        elif verb == b"RCPT" and positive:
            session.accepted.append(line.partition(b"<")[2].partition(b">")[0])
        elif verb == b"DATA" and positive:
            session.in_data = True

    def _reply(self, sock: socket.socket, session: Session, reply) -> bool:
        """Send `reply`; False when the session is over."""
        if reply is CLOSE:
            return False
        if reply is SILENT:
            while self._receive(sock, session):  # keep recording until the client gives up
                pass
            return False
        if self.reply_delay:
            time.sleep(self.reply_delay)
            while select.select([sock], [], [], 0)[0]:
                if not self._receive(sock, session):
                    break
        hangup = isinstance(reply, Hangup)
        chunks = reply.reply if hangup else reply
        for index, chunk in enumerate(chunks if isinstance(chunks, tuple) else (chunks,)):
            if isinstance(chunk, _Action):  # Split(b"220 partial line", SILENT)
                return self._reply(sock, session, chunk)
            if index:
                time.sleep(self.split_pause)
            session.events.append(("send", chunk))
            sock.sendall(chunk)
        return not hangup


@pytest.fixture
def serve():
    """``serve(respond, **options)`` starts a FakeSmtpServer; all stop at the end of the test."""
    with ExitStack() as stack:
        yield lambda respond=None, **options: stack.enter_context(FakeSmtpServer(respond, **options))


@pytest.fixture
def client_for():
    """``client_for(server, protocol, **options)``: a client with short timeouts, closed at the end."""
    clients = []

    def make(server, protocol="smtp", **options):
        options.setdefault("timeout", 1.0)
        options.setdefault("connect_timeout", 1.0)
        client = SmtpClient(server.target(protocol) if isinstance(server, FakeSmtpServer) else server, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() on it
    except OSError:
        pass
    sock.close()


def certificate_pem() -> str:
    """The fake's self-signed certificate, for a client that verifies it (as its own CA)."""
    return _certificate()[1].decode()


@cache
def _server_context() -> ssl.SSLContext:
    """The server side's TLS context, with the one certificate."""
    key_pem, certificate_pem_bytes = _certificate()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "fake.pem")
        with open(path, "wb") as handle:
            handle.write(key_pem + certificate_pem_bytes)
        context.load_cert_chain(path)
    return context


def _certificate() -> tuple[bytes, bytes]:
    """(key, certificate) in PEM: self-signed for IP 127.0.0.1, made once per process."""
    with _CERTIFICATE_LOCK:  # sessions' threads and the test may ask at once: all must get the same one
        return _make_certificate()


_CERTIFICATE_LOCK = threading.Lock()


@cache
def _make_certificate() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())  # an EC key takes milliseconds, RSA far longer
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)
