"""The trace header: stamped by `MessageFactory.build`, read back by the sink with `parse_trace`."""

from __future__ import annotations

import re
from typing import NamedTuple

TRACE_HEADER = "X-Loadkit-Trace"
SEQUENCE_DIGITS = 10  # zero-padded, so the header block keeps its length
MAX_SEQUENCE = 10**SEQUENCE_DIGITS - 1

# Date, Message-ID and trace: the only per-message bytes, in front of a pooled message.
STAMP = (
    "Date: %s\r\n"
    "Message-ID: <{run}.{src}.%0{digits}d@{host}>\r\n"
    "X-Loadkit-Trace: run={run}; src={src}; seq=%0{digits}d; t=%017.6f\r\n"
)


class Trace(NamedTuple):
    """What an ``X-Loadkit-Trace`` header says about a message."""

    run_id: str
    source: str
    sequence: int
    sent_at: float  # epoch seconds when the message was built, just before sending


_TRACE_NAME = TRACE_HEADER.encode("ascii") + b":"
_TRACE_VALUE = re.compile(
    rb"[ \t\r\n]*run=([A-Za-z0-9._-]+);[ \t\r\n]*src=([A-Za-z0-9._-]+);"
    rb"[ \t\r\n]*seq=([0-9]{1,20});[ \t\r\n]*t=([0-9]{1,12}(?:\.[0-9]{1,9})?)[ \t]*(?:\r?\n|\Z)"
)


def parse_trace(data: bytes | str) -> Trace | None:
    """The trace of a whole message, its header block, or just the header's value.

    Only the header block (up to the first blank line) is searched. Anything
    missing or malformed gives None, never an exception.
    """
    try:
        if isinstance(data, str):
            data = data.encode("ascii")
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = len(data)
        at = data.find(_TRACE_NAME, 0, end)
        while at > 0 and data[at - 1] != 0x0A:  # a match inside another header's line
            at = data.find(_TRACE_NAME, at + 1, end)
        if at < 0:
            at = data[:end].lower().find(_TRACE_NAME.lower())  # header names ignore case
            if at > 0 and data[at - 1] != 0x0A:
                return None
        if at >= 0:
            match = _TRACE_VALUE.match(data, at + len(_TRACE_NAME), end + 2)
        else:  # just the value, as email headers hand it over
            match = _TRACE_VALUE.match(data, 0, end)
        if match is None:
            return None
        run_id, source, sequence, sent_at = match.groups()
        return Trace(run_id.decode("ascii"), source.decode("ascii"), int(sequence), float(sent_at))
    except (TypeError, ValueError, UnicodeError, AttributeError):
        return None
