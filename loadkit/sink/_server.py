"""The sink's sockets: listen, accept, run each session in a greenlet.

Everything runs on a gevent hub, but on raw ``_socket`` objects rather than
gevent's socket class: the read loop waits on its own I/O watcher and then
calls ``recv`` once, which skips a failed non-blocking ``recv`` (an
exception) and a timer per read. Idle sessions are found by a sweeper that
compares read counters every so often, for the same reason. Session
greenlets are parked and reused: creating one per connection costs about
ten microseconds (a stack mapped and unmapped each time).

`SinkServer.start()` picks where the hub runs: when the socket module is
monkey-patched (inside Locust) the sessions are greenlets of the calling
thread's hub; otherwise a daemon thread runs a hub of its own, so plain
blocking code (``smtplib``, a test) can talk to the sink from the caller.

Each session runs one of two loops, chosen when it starts. The plain loop
(`_serve_plain`) is the fast path: raw socket, one read, one write, replies
counted. The full loop (`_serve_full`) adds what the plain one must not
pay for: faults (delays, drips, disconnects, a rejected greeting), replies
without enhanced status codes, and TLS. A session moves from the plain loop
to the full one when it says STARTTLS; implicit TLS starts in the full one.
TLS sessions read and write through a gevent `SSLSocket` on a duplicate of
the connection's descriptor; the original stays with the idle sweeper. To
the sweeper, each flight of the client's handshake is a read and making the
certificate is the sink's own wait, so only a silent client is timed out.
"""

from __future__ import annotations

import _socket
import errno
import os
import ssl
import stat
import threading
import time

import gevent
import gevent.event
from gevent import monkey

from loadkit.sink._auth import Authenticator
from loadkit.sink._buffers import BufferBudget
from loadkit.sink._control import ControlServer, LiveFaults
from loadkit.sink._dkim import DkimVerifier
from loadkit.sink._errors import SinkError
from loadkit.sink._faults import SlowReply
from loadkit.sink._full import rejected_verbs
from loadkit.sink._profile import SinkProfile
from loadkit.sink._protocol import S221_BYE, S421_SHUTDOWN, S421_TIMEOUT, strip_enhanced_codes
from loadkit.sink._settings import SinkSettings
from loadkit.sink._stats import FOLD_REPLIES_ABOVE, SinkStats
from loadkit.sink._store import MaildirStore
from loadkit.sink._tls import TlsSetupError, self_signing_problem, server_context
from loadkit.urls import Target

RECV_SIZE = 65536  # below malloc's mmap threshold: a bigger read costs mmap+mremap+munmap each
DRAIN_GRACE = 2.0  # seconds sessions get to say QUIT once max_messages is reached
MAX_IDLE_GREENLETS = 256  # parked session greenlets kept for the next connections
DRIP_TICK = 0.01  # seconds between the pieces of a dripped reply, at most
_READ, _WRITE = 1, 2  # libev/libuv event masks
# Sessions keep blocking sockets and pass MSG_DONTWAIT on each call: that
# saves an ioctl per connection, and a spurious wakeup still cannot block.
_DONTWAIT = _socket.MSG_DONTWAIT


class _Connection:
    """The bookkeeping of one session that the idle sweeper reads."""

    __slots__ = ("sock", "reads", "seen_reads", "seen_at", "tls", "busy")

    def __init__(self, sock, now: float):
        self.sock = sock
        self.reads = 0
        self.seen_reads = 0
        self.seen_at = now
        self.tls = False  # a 421 in clear text would garble the TLS stream: just close
        self.busy = False  # the sink itself is waiting (a delay, a drip, a certificate): not the client's silence


class SinkServer:
    """A discard SMTP/LMTP server: accepts every message, counts it, drops it.

    ::

        with SinkServer("127.0.0.1:0") as sink:       # or a Target, or SinkSettings
            send_mail_to(*sink.address)
            sink.wait(timeout=10)                        # until max_messages
        print(sink.stats.as_dict())

    It takes a `SinkSettings`, or what makes one: the listening address
    (smtp-sink's ``[inet:][host]:port`` / ``unix:path`` text or a `Target`;
    port 0 binds a free port, see `address`) and the settings' keywords
    (``lmtp=True``, ``faults=...``, ``max_messages=...``; see `SinkSettings`).
    With `max_messages` the server stops by itself after answering that
    many messages.

    Making the server reads what the settings name on disk (certificate,
    users file, maildir, trace log); a problem is a `SinkError`. Without a
    certificate one is made at the first STARTTLS; when the tools to make
    one are missing, STARTTLS is not offered and `tls_problem` says why.
    """

    def __init__(self, settings: SinkSettings | Target | str, **keywords):
        if not isinstance(settings, SinkSettings):
            settings = SinkSettings(settings, **keywords)
        elif keywords:
            raise TypeError("SinkServer takes SinkSettings or keywords, not both")
        self.settings = settings
        self.target = settings.listen
        self.tls_problem: str | None = None
        self._tls_context = None
        self._tls_hostname = settings.hostname
        if settings.implicit_tls or settings.tls_cert:  # asked for: check it now
            try:
                self._tls_context = server_context(settings.tls_cert, settings.tls_key, settings.hostname)
            except TlsSetupError as error:
                raise SinkError(str(error)) from None
        elif settings.offers_starttls:
            # Only a default: the certificate is made at the first STARTTLS, so runs
            # without TLS never pay for it (about 80 ms of imports and key making).
            self.tls_problem = self_signing_problem()
        faults = settings.faults
        if settings.control is not None:  # faults may change during the run: every verb goes through them
            faults = LiveFaults(faults)
        self.control: ControlServer | None = None
        self.profile = SinkProfile(
            hostname=settings.hostname, lmtp=settings.lmtp, capabilities=settings.capabilities,
            max_size=settings.max_size, max_messages=settings.max_messages, greeting=settings.greeting,
            esmtp=settings.esmtp,
            tls=self._tls_context is not None or (settings.offers_starttls and not self.tls_problem),
            authenticator=_authenticator(settings), plaintext_auth=settings.auth_plaintext,
            faults=faults, greylist=settings.greylist, rules=settings.rules, store=_maildir(settings),
            trace=settings.trace,
            buffers=BufferBudget(settings.max_buffer, settings.max_buffer_total) if settings.store or settings.dkim_verify else None,
            dkim=DkimVerifier.from_path(settings.dkim_verify) if settings.dkim_verify else None,
        )
        self._trace_log = _open_trace_log(settings.trace_log) if settings.trace_log else None
        self.timeout = settings.timeout
        self.backlog = settings.backlog
        self.stats = self._new_stats()
        self._implicit_tls = settings.implicit_tls
        # The plain loop sends replies as the session made them, at once.
        self._plain_loop = (
            not settings.implicit_tls and self.profile.faults is None and self.profile.enhanced_codes
        )
        self._rejected_verbs = rejected_verbs(self.profile.verbs)
        self._listener = None
        self._address = None
        self._connections: set[_Connection] = set()
        self._workers: list = []  # the accept loop and the sweeper
        self._session_greenlets: set = set()  # serving or parked
        self._idle: list = []  # parked session greenlets, waiting for a connection
        self._thread: threading.Thread | None = None
        self._wakeup = None  # the thread's async watcher: stop() from other threads
        self._finished = None  # set when max_messages is reached or the server stops
        self._stopped = None
        self._stopping = False
        self._draining = False  # max_messages reached: no new sessions, no new mail

    # -- public API -------------------------------------------------------

    @property
    def lmtp(self) -> bool:
        return self.profile.lmtp

    @property
    def address(self):
        """The bound ``(host, port)``, or the socket path; None before start."""
        return self._address

    @property
    def in_thread(self) -> bool:
        """True when a thread of its own serves (the socket module was not patched)."""
        return self._thread is not None

    @property
    def url(self) -> str:
        """``smtp://127.0.0.1:PORT`` (or ``smtps://``, ``lmtp://``, ``smtp+unix:///path``) of the bound socket."""
        if self._address is None:
            raise SinkError("the sink is not listening yet")
        if self.target.is_unix:
            return self.target.url()
        host, port = self._address[:2]
        return Target(self.target.protocol, host=host, port=port, tls=self.target.tls).url()

    def start(self, in_thread: bool | None = None) -> "SinkServer":
        """Bind and serve in the background; return at once.

        ``in_thread=None`` serves in the calling thread's hub when the socket
        module is monkey-patched, else in a daemon thread with its own hub.
        """
        if self._listener is not None or self._stopping:
            raise SinkError("a sink starts once: it is already started, or stopped")
        patched = monkey.is_module_patched("socket") or monkey.is_module_patched("threading")
        if in_thread is None:
            in_thread = not patched
        elif in_thread and patched:
            raise SinkError("no thread of its own under gevent monkey-patching: start(in_thread=False)")
        self._listen()
        if not in_thread:
            self._finished = gevent.event.Event()
            self._start_workers()
            return self
        self._finished = threading.Event()
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready, failure), name="loadkit-sink", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            self._close_listener()  # nothing serves it: a client must not be left waiting on it
            raise SinkError(f"the sink's thread failed to start: {failure[0]}")
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` or `max_messages`."""
        if self._listener is None:
            self._listen()
            self._finished = gevent.event.Event()
            self._start_workers()
        try:
            self._finished.wait()
        finally:
            self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until `max_messages` were answered or the server stopped; False on timeout."""
        if self._finished is None:
            raise SinkError("the sink is not started")
        return bool(self._finished.wait(timeout))

    def stop(self) -> None:
        """Close the listener and every session. Safe from any thread, twice, or in a signal handler."""
        if self._listener is None and self._thread is None:
            return
        thread = self._thread
        if thread is not None:
            if threading.current_thread() is not thread:
                if thread.is_alive():
                    self._wakeup.send()
                    thread.join(10)
                return
        if gevent.getcurrent() is gevent.get_hub():  # a signal or loop callback: cannot block here
            gevent.spawn(self._shutdown)
        else:
            self._shutdown()

    def __enter__(self) -> "SinkServer":
        if self._listener is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._address is not None else str(self.target)
        return f"<SinkServer {where} {self.stats.summary()}>"

    # -- listening ----------------------------------------------------------

    def _listen(self) -> None:
        target = self.target
        try:
            if target.is_unix:
                _remove_stale_socket(target.path)
                sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    sock.bind(target.path)
                except OSError:
                    sock.close()
                    raise
                address = target.path
            else:
                family, address = _resolve(target.host, target.port)
                sock = _socket.socket(family, _socket.SOCK_STREAM)
                try:
                    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
                    # Accepted sockets inherit it, at no cost per session. Without it a reply
                    # sent in pieces (a delayed or dripped one after the rest of a pipelined
                    # group, a TLS record) waits for the client's delayed ACK: some 40 ms.
                    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                    sock.bind(address)
                except OSError:
                    sock.close()
                    raise
                address = sock.getsockname()[:2]
            sock.listen(self.backlog)
            sock.setblocking(False)
        except OSError as error:
            reason = error.strerror or str(error)
            raise SinkError(f"cannot listen on {_spell(target)}: {reason}") from None
        if self.settings.control is not None:
            try:
                self.control = ControlServer(self.settings.control, self.profile.faults, self.stats_record)
            except SinkError:
                sock.close()
                raise
        self._listener = sock
        self._address = address
        self.stats = self._new_stats()

    def stats_record(self) -> dict:
        """The counters as ``--stats-json`` writes them: address, protocol, stats, DKIM outcomes."""
        record = {"address": self.url, "protocol": self.target.protocol, **self.stats.as_dict()}
        if self.profile.dkim is not None:
            record["dkim"] = self.profile.dkim.as_dict()
        return record

    def _new_stats(self) -> SinkStats:
        stats = SinkStats(trace=self.profile.trace)
        if stats.trace is not None:  # with the trace off there is no trace log (the settings say so)
            stats.trace.log = self._trace_log
        stats.rules = self.profile.rules
        return stats

    def _start_workers(self) -> None:
        self._stopped = gevent.event.Event()
        self._workers = [gevent.spawn(self._accept_loop)]
        if self.control is not None:
            self.control.serve(lambda: self.stats)
        if self.timeout:
            self._workers.append(gevent.spawn(self._sweep_loop))

    def _close_listener(self) -> None:
        """Close the listening socket no accept loop took over, its path and control port too."""
        self._listener.close()
        self._listener = None
        if self.control is not None:
            self.control.stop()
        self._remove_socket_path()

    def _remove_socket_path(self) -> None:
        if self.target.is_unix and self._address:
            try:
                os.unlink(self._address)
            except OSError:
                pass

    def _thread_main(self, ready: threading.Event, failure: list) -> None:
        try:
            hub = gevent.get_hub()
            self._wakeup = hub.loop.async_()
            self._wakeup.start(self._stop_from_outside)
            self._start_workers()
        except BaseException as error:  # noqa: BLE001 - reported by start()
            failure.append(error)
            ready.set()
            return
        ready.set()
        self._stopped.wait()
        self._wakeup.close()
        hub.destroy(destroy_loop=True)

    def _stop_from_outside(self) -> None:
        gevent.spawn(self._shutdown)

    def _shutdown(self) -> None:
        """Kill the workers and sessions and wait for them: always runs in a greenlet."""
        if self._stopping:
            return
        self._stopping = True
        self.stats.stopped = time.monotonic()
        if self.control is not None:
            self.control.stop()
        gevent.killall(self._workers + list(self._session_greenlets), block=True, timeout=5)
        self._remove_socket_path()
        if self._trace_log is not None:
            self.stats.trace.log = None
            os.close(self._trace_log)
            self._trace_log = None
        self._listener = None
        self._finished.set()
        self._stopped.set()

    def _on_limit(self) -> None:
        # Called inside a session before its reply is sent: act once it yields.
        gevent.spawn(self._drain)

    def _drain(self) -> None:
        """Stop accepting, let the clients say QUIT (a short grace), then stop."""
        self._draining = True
        if self._workers:
            self._workers[0].kill(block=True, timeout=5)  # the accept loop: closes the listener
        deadline = time.monotonic() + DRAIN_GRACE
        while self._connections and time.monotonic() < deadline:
            gevent.sleep(0.01)
        self._shutdown()

    # -- the loops ----------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        hub = gevent.get_hub()
        watcher = hub.loop.io(listener.fileno(), _READ)
        accept = listener._accept
        family = listener.family
        spawn = gevent.spawn
        run_callback = hub.loop.run_callback
        idle = self._idle
        worker = self._session_greenlet
        hand_over = _hand_over
        try:
            while True:
                hub.wait(watcher)
                for _ in range(64):
                    try:
                        fd, peer = accept()
                    except BlockingIOError:
                        break
                    except OSError as error:
                        if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                            gevent.sleep(0.05)  # out of descriptors: let sessions end
                        break
                    sock = _socket.socket(family, _socket.SOCK_STREAM, 0, fd)
                    if idle:
                        run_callback(hand_over, idle.pop(), sock, peer)
                    else:
                        spawn(worker, sock, peer)
        finally:
            watcher.close()
            listener.close()

    def _session_greenlet(self, sock, peer) -> None:
        """Serve this connection, then park and serve the next ones handed over."""
        me = gevent.getcurrent()
        park = gevent.get_hub().switch
        idle = self._idle
        self._session_greenlets.add(me)
        try:
            while True:
                self._serve(sock, peer)
                if len(idle) >= MAX_IDLE_GREENLETS:
                    return
                idle.append(me)
                sock, peer = park()  # resumed by _hand_over with the next connection
        finally:
            self._session_greenlets.discard(me)
            if me in idle:
                idle.remove(me)

    def _serve(self, sock, peer) -> None:
        """One session, in the loop it needs."""
        stats = self.stats
        stats.sessions += 1
        session = self.profile.session_class(self.profile, stats, self._on_limit, peer)
        connection = _Connection(sock, time.monotonic())
        connections = self._connections
        connections.add(connection)
        try:
            if self._plain_loop:
                if self._serve_plain(sock, session, connection):
                    self._serve_full(sock, session, connection, upgrade=True)
            else:
                self._serve_full(sock, session, connection)
        except OSError:
            pass  # reset by the peer, or closed under us: the session is over either way
        finally:
            session.end()
            connections.discard(connection)
            sock.close()
            if len(stats.replies) > FOLD_REPLIES_ABOVE:
                stats.fold_replies()

    def _serve_plain(self, sock, session, connection) -> bool:
        """The hot loop: wait for input, read once, answer once. True when STARTTLS was asked."""
        hub = gevent.get_hub()
        watcher = hub.loop.io(sock.fileno(), _READ)
        wait = hub.wait
        recv = sock.recv
        send = sock.send
        feed = session.feed_list
        join = b"".join
        counts = self.stats.replies
        count = counts.get
        banner = self.profile.banner
        try:
            _send_all(sock, banner, hub)
            counts[banner] = count(banner, 0) + 1
            while True:
                wait(watcher)
                try:
                    data = recv(RECV_SIZE, _DONTWAIT)
                except BlockingIOError:
                    continue
                if not data:
                    return False
                connection.reads += 1
                if self._draining:  # max_messages reached: a polite goodbye, whatever was asked
                    goodbye = S221_BYE if data[:4].upper() == b"QUIT" else S421_SHUTDOWN
                    counts[goodbye] = count(goodbye, 0) + 1
                    _send_all(sock, goodbye, hub)
                    return False
                out = feed(data)
                if out:
                    for reply in out:
                        counts[reply] = count(reply, 0) + 1
                    reply = out[0] if len(out) == 1 else join(out)
                    try:
                        sent = send(reply, _DONTWAIT)
                    except BlockingIOError:
                        sent = 0
                    if sent < len(reply):
                        _send_all(sock, reply[sent:], hub)
                if session.closing:
                    return session.starttls
        finally:
            watcher.close()

    def _serve_full(self, sock, session, connection, upgrade: bool = False) -> None:
        """Everything the plain loop leaves out: faults, replies without enhanced codes, TLS."""
        channel = None
        try:
            if upgrade or self._implicit_tls:
                channel = self._start_tls(sock, session, connection)
                if channel is None:
                    return
            else:
                channel = _PlainChannel(sock)
            if not upgrade and not self._greet(channel, session, connection):
                return
            while True:
                data = channel.recv()
                if not data:
                    return
                connection.reads += 1
                if self._draining:
                    self._answer(channel, [S221_BYE if data[:4].upper() == b"QUIT" else S421_SHUTDOWN], connection)
                    return
                out = session.feed_list(data)
                if out:
                    self._answer(channel, out, connection)
                if session.closing:
                    if not session.starttls:
                        return
                    channel.close()
                    channel = self._start_tls(sock, session, connection)
                    if channel is None:
                        return
        finally:
            if channel is not None:
                channel.close()

    def _greet(self, channel, session, connection) -> bool:
        """Send the banner, or what a CONNECT fault says instead; False when the session ends here."""
        profile = self.profile
        banner = profile.banner
        faults = profile.faults
        if faults is None or not faults.affects("CONNECT"):
            self._answer(channel, [banner], connection)
            return True
        greeting = faults.apply("CONNECT", session, lambda: banner)
        if greeting:
            self._answer(channel, [greeting], connection)
        if session.closing:
            return False
        text = greeting.reply if isinstance(greeting, SlowReply) else greeting
        if text[:1] == b"4":  # a temporary refusal of the whole session: nothing more to say
            return False
        if text[:1] == b"5":  # RFC 5321 3.1: wait for QUIT, 503 to the rest
            session.verbs = self._rejected_verbs
        return True

    def _answer(self, channel, out: list, connection) -> None:
        """Send replies in order; act on the slow ones (wait, drip)."""
        counts = self.stats.replies
        count = counts.get
        pending = []
        for item in out:
            if item.__class__ is bytes:
                counts[item] = count(item, 0) + 1
                pending.append(item)
                continue
            counts[item.reply] = count(item.reply, 0) + 1
            if pending:
                self._send(channel, b"".join(pending))
                pending = []
            connection.busy = True
            try:
                if item.delay:
                    gevent.sleep(item.delay)
                if item.rate:
                    self._drip(channel, item.reply, item.rate)
                else:
                    self._send(channel, item.reply)
            finally:
                connection.busy = False
                connection.reads += 1  # the wait was ours: the client's silence starts now
        if pending:
            self._send(channel, b"".join(pending))

    def _send(self, channel, replies: bytes) -> None:
        if replies:
            channel.send(replies if self.profile.enhanced_codes else strip_enhanced_codes(replies))

    def _drip(self, channel, reply: bytes, rate: int) -> None:
        """Send `reply` at `rate` bytes a second: a piece at least every DRIP_TICK seconds."""
        if not self.profile.enhanced_codes:
            reply = strip_enhanced_codes(reply)
        piece = max(1, int(rate * DRIP_TICK))
        began = time.perf_counter()
        for start in range(0, len(reply), piece):
            if start:
                # on the rate's schedule, not a pause after each send: a late wakeup is not added to the next
                gevent.sleep(max(0.0, began + start / rate - time.perf_counter()))
            channel.send(reply[start:start + piece])

    def _start_tls(self, sock, session, connection):
        """Handshake on a duplicate of the connection's descriptor; a `_TlsChannel`, or None."""
        import gevent.socket

        connection.tls = True  # the client may be sending its ClientHello already
        if self._tls_context is None:
            connection.busy = True  # making the certificate is our wait, not the client's silence
            try:
                self._tls_context = server_context(hostname=self._tls_hostname)
            except TlsSetupError as error:
                self.tls_problem = str(error)
                self.stats.tls_failures += 1
                return None
            finally:
                connection.busy = False
                connection.reads += 1
        # The duplicate shares the connection's TCP_NODELAY (set on the listener).
        duplicate = gevent.socket.socket(sock.family, _socket.SOCK_STREAM, 0, os.dup(sock.fileno()))
        tls_socket = None
        try:
            tls_socket = self._tls_context.wrap_socket(duplicate, server_side=True, do_handshake_on_connect=False)
            _handshake(tls_socket, connection)
        except (OSError, ValueError):
            (duplicate if tls_socket is None else tls_socket).close()  # the wrapper took the descriptor over
            self.stats.tls_failures += 1
            return None
        self.stats.tls_sessions += 1
        session.tls_started()
        return _TlsChannel(tls_socket)

    def _sweep_loop(self) -> None:
        timeout = self.timeout
        period = min(1.0, timeout / 4)
        while True:
            gevent.sleep(period)
            now = time.monotonic()
            for connection in list(self._connections):
                if connection.reads != connection.seen_reads or connection.busy:
                    connection.seen_reads = connection.reads
                    connection.seen_at = now
                elif now - connection.seen_at >= timeout:
                    self._connections.discard(connection)
                    self.stats.timeouts += 1
                    try:  # no room for it in a client's full buffer: it is not waited for
                        if not connection.tls and connection.sock.send(S421_TIMEOUT, _DONTWAIT):
                            replies = self.stats.replies
                            replies[S421_TIMEOUT] = replies.get(S421_TIMEOUT, 0) + 1
                    except OSError:
                        pass
                    try:  # the session wakes up to end of file (or a failed send) and ends, 421 or not
                        connection.sock.shutdown(_socket.SHUT_RDWR)
                    except OSError:
                        pass


class _PlainChannel:
    """The full loop's reads and writes on the raw socket."""

    __slots__ = ("sock", "hub", "watcher")

    def __init__(self, sock):
        self.sock = sock
        self.hub = gevent.get_hub()
        self.watcher = self.hub.loop.io(sock.fileno(), _READ)

    def recv(self) -> bytes:
        while True:
            self.hub.wait(self.watcher)
            try:
                return self.sock.recv(RECV_SIZE, _DONTWAIT)
            except BlockingIOError:
                continue

    def send(self, data: bytes) -> None:
        _send_all(self.sock, data, self.hub)

    def close(self) -> None:
        self.watcher.close()


class _TlsChannel:
    """The full loop's reads and writes through a gevent SSLSocket."""

    __slots__ = ("tls_socket",)

    def __init__(self, tls_socket):
        self.tls_socket = tls_socket

    def recv(self) -> bytes:
        return self.tls_socket.recv(RECV_SIZE)

    def send(self, data: bytes) -> None:
        self.tls_socket.sendall(data)

    def close(self) -> None:
        self.tls_socket.close()


def _handshake(tls_socket, connection) -> None:
    """The server's side of the handshake, each wake-up for the client's bytes counted as a read.

    The idle sweeper then sees a slow handshake progress as it sees a slow
    client talk, and still ends one that stops half-way.
    """
    hub = gevent.get_hub()
    watchers = {}
    tls_socket.settimeout(0.0)  # raise on want-read / want-write: the waits are ours to count
    try:
        while True:
            try:
                tls_socket.do_handshake()
                return
            except ssl.SSLWantReadError:
                events = _READ
            except ssl.SSLWantWriteError:
                events = _WRITE
            watcher = watchers.get(events)
            if watcher is None:
                watcher = watchers[events] = hub.loop.io(tls_socket.fileno(), events)
            hub.wait(watcher)
            if events == _READ:
                connection.reads += 1
    finally:
        for watcher in watchers.values():
            watcher.close()
        tls_socket.settimeout(None)


def _hand_over(greenlet, sock, peer) -> None:
    """Resume a parked session greenlet with a new connection (a loop callback)."""
    if greenlet.dead:  # killed while the hand-over was queued: the server is stopping
        sock.close()
    else:
        greenlet.switch((sock, peer))


def _authenticator(settings: SinkSettings) -> Authenticator | None:
    if not settings.offers_auth:
        return None
    users = settings.auth_users
    try:
        if isinstance(users, str):
            return Authenticator.from_file(users, settings.auth_mechanisms)
        return Authenticator(None if users is None else dict(users), settings.auth_mechanisms)
    except OSError as error:
        raise SinkError(f"cannot read --auth-users {users}: {error.strerror or error}") from None
    except ValueError as error:  # a malformed line of the users file
        raise SinkError(str(error)) from None


def _maildir(settings: SinkSettings) -> MaildirStore | None:
    if not settings.store:
        return None
    try:
        return MaildirStore(settings.store, settings.store_max)
    except OSError as error:
        raise SinkError(f"cannot use --store {settings.store}: {error.strerror or error}") from None


def _open_trace_log(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as error:
        raise SinkError(f"cannot write --trace-log {path}: {error.strerror or error}") from None


def _send_all(sock, data: bytes, hub) -> None:
    """Send everything, waiting for room in the socket buffer when it is full."""
    view = memoryview(data)
    watcher = None
    try:
        while view:
            try:
                sent = sock.send(view, _DONTWAIT)
            except BlockingIOError:
                sent = 0
            view = view[sent:]
            if view:
                if watcher is None:
                    watcher = hub.loop.io(sock.fileno(), _WRITE)
                hub.wait(watcher)
    finally:
        if watcher is not None:
            watcher.close()


def _resolve(host: str, port: int):
    try:
        infos = _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM, 0, _socket.AI_PASSIVE)
    except OSError as error:
        raise OSError(error.errno, f"cannot resolve {host!r}: {error.strerror or error}") from None
    family, _type, _proto, _name, address = infos[0]
    return family, address


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse to touch anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # a leftover of a sink that is gone
        return
    except OSError:
        return  # let bind() report what is wrong
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "Address already in use (another server listens there)")


def _spell(target: Target) -> str:
    if target.is_unix:
        return f"unix:{target.path}"
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"
