"""What the sink has received: exact counters, cheap to bump on the hot path.

The sink's sessions add to these plain integer attributes directly (no
locks: they run as greenlets in one thread). Readers in other threads see a
consistent-enough view for progress lines; `as_dict` is the one to write to
files.
"""

from __future__ import annotations

import time


class SinkStats:
    """Counters of one sink run.

    sessions    connections accepted
    messages    transactions completed with a positive end-of-data reply
                (LMTP: a message delivered to N recipients counts once)
    recipients  accepted recipients of completed messages
    bytes       message bytes as delivered: dot-stuffing removed, the
                terminating ".<CR><LF>" excluded
    timeouts    sessions closed because the client stayed silent too long
    """

    __slots__ = ("sessions", "messages", "recipients", "bytes", "timeouts", "started", "stopped")

    def __init__(self) -> None:
        self.sessions = 0
        self.messages = 0
        self.recipients = 0
        self.bytes = 0
        self.timeouts = 0
        self.started = time.monotonic()
        self.stopped: float | None = None

    @property
    def duration(self) -> float:
        """Seconds from the start of serving to its end (or to now, while it runs)."""
        end = self.stopped if self.stopped is not None else time.monotonic()
        return end - self.started

    def as_dict(self) -> dict:
        return {
            "sessions": self.sessions,
            "messages": self.messages,
            "recipients": self.recipients,
            "bytes": self.bytes,
            "timeouts": self.timeouts,
            "duration": round(self.duration, 6),
        }

    def summary(self) -> str:
        """One line for people, as the running counters show it."""
        return (
            f"sessions {self.sessions} messages {self.messages} "
            f"recipients {self.recipients} bytes {self.bytes}"
        )

    def __repr__(self) -> str:
        return f"<SinkStats {self.summary()}>"
