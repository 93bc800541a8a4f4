"""Progress of a report build on stderr: a bar on a terminal, a few plain lines elsewhere.

A long run's metrics.jsonl takes seconds to read; a bar tells the person
at the terminal that something is happening. In a CI log a redrawn bar is
noise, so there each stage is one line.
"""

from __future__ import annotations

import sys
import time

BAR_WIDTH = 28
REDRAW_EVERY = 0.1  # seconds


class Progress:
    """``stage(text)`` starts a step; ``update(fraction)`` moves the bar within it; ``done()`` ends.

    Off a terminal, each step is one line written when it ends, with its
    time: a build that fails leaves only its error on stderr.
    """

    def __init__(self, stream=None, prefix: str = "loadkit report"):
        self.stream = sys.stderr if stream is None else stream
        self.prefix = prefix
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.text = ""
        self.fraction = 0.0
        self.last_draw = 0.0
        self.started = self.stage_started = time.monotonic()

    def stage(self, text: str) -> None:
        self._end_stage()
        self.text = text
        self.fraction = 0.0
        self.stage_started = time.monotonic()
        if self.interactive:
            self._draw(force=True)

    def update(self, fraction: float) -> None:
        self.fraction = min(max(fraction, 0.0), 1.0)
        if self.interactive:
            self._draw()

    def done(self, text: str) -> None:
        self.clear()
        self._end_stage()
        self._line(f"{text} ({time.monotonic() - self.started:.1f} s)")

    def clear(self) -> None:
        """Take the bar off the terminal line (before an error message, say)."""
        if self.interactive and self.text:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.text = ""

    def _end_stage(self) -> None:
        if self.text and not self.interactive:
            self._line(f"{self.text} ({time.monotonic() - self.stage_started:.1f} s)")
        self.text = ""

    def _line(self, text: str) -> None:
        self.stream.write(f"{self.prefix}: {text}\n")
        self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < REDRAW_EVERY and self.fraction < 1.0:
            return
        self.last_draw = now
        filled = int(round(self.fraction * BAR_WIDTH))
        bar = "\u2588" * filled + "\u2591" * (BAR_WIDTH - filled)
        self.stream.write(f"\r\x1b[2K{self.prefix}: {bar} {self.fraction * 100:3.0f}% {self.text}")
        self.stream.flush()


class NoProgress:
    """The silent stand-in, for callers that print their own output (``loadkit demo``)."""

    def stage(self, text: str) -> None:
        pass

    def update(self, fraction: float) -> None:
        pass

    def done(self, text: str) -> None:
        pass

    def clear(self) -> None:
        pass
