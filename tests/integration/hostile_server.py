"""A small SMTP server that misbehaves in the ways `loadkit sink` cannot, for the client's fault tests.

A plain socket server on loopback, port 0, one thread per connection. It
speaks just enough SMTP to reach the phase where it misbehaves; `mode`:

close-after-421-at-mail  "421 4.3.2" to MAIL, then close
close-mid-data           354 to DATA, read a little of the message, close
endless-line             a banner that never ends: no CRLF, growing
endless-reply            an EHLO reply of "250-" lines that never ends
drip-banner              the banner, a byte a second
non-ascii                replies of UTF-8 and control bytes; 550 at RCPT
no-banner                accept, say nothing
bad-tls                  garbage where the TLS handshake should be (smtps)
never-reads              answer up to 354, then never read the message

`connections` counts the sessions accepted, `sent` the bytes sent. Every
loop is bounded: a mode that writes forever stops after MAX_WRITTEN bytes
or when the client goes away; `close()` ends everything.
"""

from __future__ import annotations

import socket
import threading
import time

MAX_WRITTEN = 64 << 20  # what an endless mode writes at most, per connection
MODES = (
    "close-after-421-at-mail", "close-mid-data", "endless-line", "endless-reply", "drip-banner",
    "non-ascii", "no-banner", "bad-tls", "never-reads",
)
BANNER = b"220 hostile.test ESMTP\r\n"
EHLO = b"250-hostile.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


class HostileServer:
    def __init__(self, mode: str):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.connections = 0
        self.sent = 0
        self._closed = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        with self._lock:
            for client in self._clients:
                try:
                    client.close()
                except OSError:
                    pass
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    # -- one connection ------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(0.2)
        try:
            getattr(self, "_" + self.mode.replace("-", "_"))(client)
        except OSError:
            pass  # the client went away: that ends the mode
        finally:
            try:
                client.close()
            except OSError:
                pass

    def _send(self, client, data: bytes) -> None:
        client.sendall(data)
        self.sent += len(data)

    def _lines(self, client, answer) -> None:
        """Read command lines and send what `answer(line)` returns (None: stop serving)."""
        buf = b""
        while not self._closed.is_set():
            try:
                data = client.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                reply = answer(line.rstrip(b"\r").upper())
                if reply is None:
                    return
                self._send(client, reply)

    @staticmethod
    def _polite(line: bytes) -> bytes:
        verb = line[:4]
        if verb in (b"EHLO", b"LHLO"):
            return EHLO
        if verb == b"DATA":
            return b"354 go ahead\r\n"
        if verb == b"QUIT":
            return b"221 bye\r\n"
        return b"250 ok\r\n"

    def _close_after_421_at_mail(self, client) -> None:
        self._send(client, BANNER)

        def answer(line):
            if line.startswith(b"MAIL"):
                self._send(client, b"421 4.3.2 going away\r\n")
                return None
            return self._polite(line)
        self._lines(client, answer)

    def _close_mid_data(self, client) -> None:
        self._send(client, BANNER)
        buf = b""
        while not self._closed.is_set() and b"DATA\r\n" not in buf.upper():
            try:
                data = client.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            buf += data
            replies = [self._polite(line.upper()) for line in data.split(b"\r\n") if line]
            self._send(client, b"".join(replies))
        try:
            client.recv(100)  # a little of the message, then hang up
        except TimeoutError:
            pass

    def _endless_line(self, client) -> None:
        self._send(client, b"220 ")
        self._write_forever(client, b"x" * 1024)

    def _endless_reply(self, client) -> None:
        self._send(client, BANNER)
        self._lines(client, lambda line: None if line.startswith(b"EHLO") else self._polite(line))
        self._write_forever(client, b"250-PIPELINING\r\n" * 64)

    def _write_forever(self, client, piece: bytes) -> None:
        client.settimeout(5)
        written = 0
        while written < MAX_WRITTEN and not self._closed.is_set():
            self._send(client, piece)
            written += len(piece)

    def _drip_banner(self, client) -> None:
        for byte in BANNER:
            if self._closed.is_set():
                return
            self._send(client, bytes([byte]))
            time.sleep(1)

    def _non_ascii(self, client) -> None:
        self._send(client, "220 hôte.test ESMTP ☃\r\n".encode())

        def answer(line):
            if line.startswith(b"RCPT"):
                return "550 5.1.1 <ünknown>\x1b[31m: boîte inconnue\x00\r\n".encode()
            if line.startswith(b"EHLO"):
                return "250-hôte.test\r\n250 PIPELINING\r\n".encode()
            return self._polite(line)
        self._lines(client, answer)

    def _no_banner(self, client) -> None:
        self._closed.wait(60)

    def _bad_tls(self, client) -> None:
        self._send(client, b"this is not a TLS server hello\r\n" * 4)
        self._closed.wait(1)

    def _never_reads(self, client) -> None:
        self._send(client, BANNER)
        self._lines(client, lambda line: None if line.startswith(b"DATA") else self._polite(line))
        self._send(client, b"354 go ahead\r\n")  # then read nothing more
        self._closed.wait(60)
