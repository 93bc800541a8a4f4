"""Sessions that do more than count: read traces, store messages, inject faults, greylist.

`SinkProfile` picks its session class once, with `session_class_for`:
the plain `SmtpSession`/`LmtpSession` when the sink only counts, the
classes here otherwise. So the plain classes' verbs and end of data stay as
short as they were, and the cost of a feature is paid only when it is on.

What the classes here add:

- the message is kept while it is scanned (`capture`): all of it for
  ``--store``; for the trace header alone, its header block (up to the
  blank line, at most TRACE_CAPTURE bytes), as it came, dot-stuffed: a
  header line does not start with a dot, and undoing the stuffing of a
  whole message costs more than the rest of its handling;
- at the end of the message: the "." faults, the store (a failed write is
  answered 451 and the message is not counted), the count, then the trace
  (`loadkit.messages.parse_trace`, header block only) into
  `SinkStats.trace`;
- with ``--store``, greylisting or ``--rules`` (`EnvelopeSmtpSession`),
  MAIL and RCPT remember the envelope: the store writes it as Return-Path
  and Delivered-To headers, greylisting keys on it, the recipient rules
  (`loadkit.sink._rules`) answer by it.
"""

from __future__ import annotations

import re
import time

from loadkit.messages import parse_trace
from loadkit.sink._buffers import S552_OVER_BUFFER
from loadkit.sink._faults import S450_GREYLISTED, S503_SEND_QUIT
from loadkit.sink._protocol import (
    DATA,
    S250_RECIPIENT_OK,
    S250_SENDER_OK,
    LmtpSession,
    SmtpSession,
    split_path,
)

# Message bytes kept for the trace header alone: a long header block still fits, and
# parse_trace's search for the blank line stays short when there is none.
TRACE_CAPTURE = 16384
_STUFFED_DOT = re.compile(rb"\r\n\.")  # a regex: bytes.replace crawls over text full of CRLFs
S451_NOT_STORED = b"451 4.3.0 Error: the message could not be stored\r\n"


def session_class_for(profile) -> type:
    envelope = profile.store is not None or profile.greylist is not None or profile.rules is not None
    if envelope:
        return EnvelopeLmtpSession if profile.lmtp else EnvelopeSmtpSession
    if profile.trace or profile.faults is not None or profile.dkim is not None:
        return FullLmtpSession if profile.lmtp else FullSmtpSession
    return LmtpSession if profile.lmtp else SmtpSession


class _Capturing:
    """Keeps the message while it is scanned, and acts at its end."""

    __slots__ = ()

    def smtp_DATA(self, argument: bytes) -> bytes:
        reply = super().smtp_DATA(argument)
        if self._in_data == DATA:
            self._start_capture(stuffed=True)
        return reply

    def smtp_BDAT(self, argument: bytes) -> bytes:
        first = not self._chunking
        reply = super().smtp_BDAT(argument)
        if first and self._chunking:  # the transaction's first good chunk
            self._start_capture(stuffed=False)
        return reply

    def _start_capture(self, stuffed: bool) -> None:
        profile = self.profile
        if self._captured:  # a transaction that never reached its end (RSET after BDAT chunks)
            self.drop_capture()
        self._capture_refused = None
        if (profile.store is not None and not profile.store.full) or profile.dkim is not None:
            self._capture_left = profile.max_size + 2 if profile.max_size else 1 << 62
            self._capture_headers = False
        elif profile.trace:
            self._capture_left = TRACE_CAPTURE
            self._capture_headers = True
        else:
            return
        self._capture = []
        self._capture_stuffed = stuffed

    def capture(self, buf: bytes, start: int, end: int) -> None:
        left = self._capture_left
        if left <= 0:
            return
        if end - start > left:
            end = start + left
        if self._capture_headers:  # for the trace alone: stop at the blank line (usually in the first read)
            blank = buf.find(b"\r\n\r\n", start, end)
            if blank >= 0:
                end = blank + 4
                left = end - start
        else:  # the whole message, held against the sink's buffer budget
            budget = self.profile.buffers
            if budget is not None:
                refusal = budget.take(self._captured, end - start)
                if refusal is not None:  # stop keeping it now; the reply comes at its end
                    self.drop_capture()
                    self._capture_refused = refusal
                    return
                self._captured += end - start
        self._capture.append(buf[start:end])
        self._capture_left = left - (end - start)

    def drop_capture(self) -> None:
        if self._captured:
            self.profile.buffers.give_back(self._captured)
            self._captured = 0
        self._capture = None

    def end_of_data(self, size: int) -> bytes:
        pieces = self._capture
        self._capture = None  # the pieces stay held against the budget until delivered
        if self._capture_refused is not None:
            return self._refuse_over_buffer()
        faults = self.profile.faults
        if faults is None or not faults.affects("."):
            reply = self._deliver(size, pieces)
        else:
            rcpts = self._rcpts
            reply = faults.apply(".", self, self._deliver, size, pieces)
            if self._mail:  # a rule answered instead of _deliver: the transaction still ends
                self._end_transaction()
                if self.profile.lmtp and reply:
                    reply = reply * rcpts
        if self._captured:
            self.drop_capture()
        return reply

    def _refuse_over_buffer(self) -> bytes:
        """The message outgrew the buffer budget while it came: 552 or 451, not counted."""
        reply = self._capture_refused
        self._capture_refused = None
        rcpts = self._rcpts
        self._end_transaction()
        if reply is S552_OVER_BUFFER:
            self.stats.over_buffer += 1
        else:
            self.stats.buffers_full += 1
        return reply * rcpts if self.profile.lmtp else reply

    def _deliver(self, size: int, pieces: list | None) -> bytes:
        # With DATA the pieces are the stream: CRLF, then the message dot-stuffed.
        captured = b"".join(pieces) if pieces is not None else None
        profile = self.profile
        store = profile.store
        if store is not None and not (profile.max_size and size > profile.max_size):
            if captured is None or store.full:
                self.stats.store_skipped += 1
            else:
                message = captured
                if self._capture_stuffed:
                    if len(message) - 2 != size:  # some dots were stuffed
                        message = _STUFFED_DOT.sub(b"\r\n", message)
                    message = message[2:]
                try:
                    store.save(message, self._sender, self._recipients)
                except OSError:
                    rcpts = self._rcpts
                    self.stats.store_failed += 1
                    self._end_transaction()
                    return S451_NOT_STORED * rcpts if profile.lmtp else S451_NOT_STORED
                self.stats.stored += 1
        reply = super().end_of_data(size)
        dkim = None
        if profile.dkim is not None and captured is not None and reply[:1] == b"2":
            dkim = profile.dkim.verify_captured(captured, self._capture_stuffed, size)
        if captured is not None and profile.trace and reply[:1] == b"2":
            if self._capture_left <= 0 and self._capture_headers and not captured.endswith(b"\r\n\r\n"):
                captured = captured[:captured.rfind(b"\r\n") + 2]  # cut by the budget: whole lines only
            trace = parse_trace(captured)  # a leading CRLF is no header line: the header block is the same
            if trace is not None:
                self.stats.trace.record(trace, time.time(), dkim)
        return reply


class _Envelope:
    """MAIL and RCPT remember the envelope; RCPT asks the greylist, then the recipient rules."""

    __slots__ = ()

    def smtp_MAIL(self, argument: bytes) -> bytes:
        reply = super().smtp_MAIL(argument)
        if reply is S250_SENDER_OK:
            self._sender = split_path(argument[5:])
            self._recipients = []
        return reply

    def smtp_RCPT(self, argument: bytes) -> bytes:
        reply = super().smtp_RCPT(argument)
        if reply is S250_RECIPIENT_OK:
            recipient = split_path(argument[3:])
            greylist = self.profile.greylist
            if greylist is not None:
                peer = self.peer[0] if isinstance(self.peer, tuple) else "local"
                if not greylist.passes((peer, self._sender, recipient), time.monotonic()):
                    self._rcpts -= 1
                    self.stats.count_fault("greylist", "rcpt")
                    return S450_GREYLISTED
            rules = self.profile.rules
            if rules is not None:
                peer = self.peer[0] if isinstance(self.peer, tuple) else "local"
                refusal = rules.answer(peer, self._sender, recipient)
                if refusal is not None:
                    self._rcpts -= 1
                    return refusal
            self._recipients.append(recipient)
        return reply


class FullSmtpSession(_Capturing, SmtpSession):
    __slots__ = ()


class FullLmtpSession(_Capturing, LmtpSession):
    __slots__ = ()


class EnvelopeSmtpSession(_Envelope, _Capturing, SmtpSession):
    __slots__ = ()


class EnvelopeLmtpSession(_Envelope, _Capturing, LmtpSession):
    __slots__ = ()


def rejected_verbs(verbs: dict) -> dict:
    """The verb table of a session whose greeting was a 5xx: 503 to all but QUIT."""
    table = dict.fromkeys(verbs, _send_quit)
    table[b"QUIT"] = verbs[b"QUIT"]
    return table


def _send_quit(session, argument: bytes) -> bytes:
    return S503_SEND_QUIT
