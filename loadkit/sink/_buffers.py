"""How much of the messages the sink keeps in memory: a bound per session and one for all.

Counting needs no buffer: the scan keeps four bytes between reads, a command
line at most MAX_LINE, the trace header at most TRACE_CAPTURE. Only
``--store`` keeps whole messages until their end, so only it is bounded
here: a session may hold `per_session` bytes of its message, all sessions
together `total`. A message past either bound stops being kept at once
(its memory goes back), is read to its end all the same, and is answered
552 (too big for one session's buffer) or 451 (the sink's buffers are
full: try later); it is not counted as a message.
"""

from __future__ import annotations

DEFAULT_MAX_BUFFER = 16 << 20  # above the default SIZE limit: every message it accepts can be stored
DEFAULT_MAX_BUFFER_TOTAL = 256 << 20

TRIM_AFTER = 32 << 20  # once all sessions let go of this much, give the heap back (a trim takes ~1 ms)
_malloc_trim = None  # glibc's malloc_trim, looked up at the first trim

S552_OVER_BUFFER = b"552 5.3.4 Error: message too big for the sink's buffer (--max-buffer)\r\n"
S451_BUFFERS_FULL = b"451 4.3.1 Error: the sink's buffers are full, try again later\r\n"


class BufferBudget:
    """The bytes all sessions of one sink hold; `take` says when a session may hold more."""

    __slots__ = ("per_session", "total", "used", "peak")

    def __init__(self, per_session: int = DEFAULT_MAX_BUFFER, total: int = DEFAULT_MAX_BUFFER_TOTAL):
        self.per_session = per_session
        self.total = total
        self.used = 0
        self.peak = 0  # the most held since memory was last given back to the system

    def take(self, held: int, more: int) -> bytes | None:
        """Let a session holding `held` bytes hold `more`: None, or the reply that refuses it."""
        if held + more > self.per_session:
            return S552_OVER_BUFFER
        if self.used + more > self.total:
            return S451_BUFFERS_FULL
        self.used += more
        if self.used > self.peak:
            self.peak = self.used
        return None

    def give_back(self, held: int) -> None:
        self.used -= held
        if self.used == 0 and self.peak >= TRIM_AFTER:
            self.peak = 0
            _trim_heap()


def _trim_heap() -> None:
    """Hand freed heap memory back to the system (glibc keeps it otherwise, as scattered free chunks)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc: nothing to do
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)
