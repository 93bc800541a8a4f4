"""``--store DIR``: each accepted message as a file, maildir style.

Files are written to ``DIR/tmp/`` and renamed into ``DIR/new/`` once
complete, so a reader of ``new/`` never sees half a message. Names are made
by the sink alone, never from anything the client sent::

    1795652101.M123456P4242Q17.myhost

(seconds, microseconds, process id, a counter of this store, the host name),
unique within a host as maildir names are. A file holds a ``Return-Path``
and one ``Delivered-To`` per recipient, then the message as received
(dot-stuffing undone). Nothing is fsync'ed: a sink's store is for looking at,
not for keeping mail safe.

After `max_messages` files the store is `full`: messages are still accepted
and counted, but not written (``store.skipped`` in the stats).
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")  # maildir names: no "/" and no ":" in the host part


class MaildirStore:
    """A maildir (``tmp/``, ``new/``, ``cur/``) that takes messages until `max_messages`."""

    def __init__(self, directory: str, max_messages: int | None = None):
        self.directory = os.path.abspath(directory)
        self.max_messages = max_messages
        self.count = 0
        for part in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.directory, part), exist_ok=True)
        self._tmp = os.path.join(self.directory, "tmp")
        self._new = os.path.join(self.directory, "new")
        self._host = _UNSAFE.sub("_", socket.gethostname()) or "localhost"
        self._pid = os.getpid()
        self._counter = itertools.count(1)

    @property
    def full(self) -> bool:
        return self.max_messages is not None and self.count >= self.max_messages

    def unique_name(self) -> str:
        now = time.time()
        seconds = int(now)
        micros = int((now - seconds) * 1e6)
        return f"{seconds}.M{micros:06d}P{self._pid}Q{next(self._counter)}.{self._host}"

    def save(self, message: bytes, sender: bytes | None, recipients: list[bytes] | None) -> str:
        """Write one message; its path under ``new/``. OSError when it cannot be written."""
        envelope = [b"Return-Path: <%s>\r\n" % _header_safe(sender or b"")]
        envelope += [b"Delivered-To: %s\r\n" % _header_safe(recipient) for recipient in recipients or ()]
        name = self.unique_name()
        temporary = os.path.join(self._tmp, name)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(b"".join(envelope))
                stream.write(message)
            final = os.path.join(self._new, name)
            os.rename(temporary, final)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise
        self.count += 1
        return final


def _header_safe(address: bytes) -> bytes:
    """An address as one header line: no CR, LF or NUL can break out of it."""
    return address.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")
