"""SMTP replies, read defensively.

Multi-line replies are joined, every line is capped in length, and
non-printable characters are censored before anyone shows the text.
"""

from __future__ import annotations

import re

MAX_LINE = 4096  # RFC 5321 allows 512; be generous, but never unbounded
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class Reply:
    """One (possibly multi-line) reply. Text is decoded only when asked for."""

    __slots__ = ("code", "_lines")

    def __init__(self, code: int, lines: list[bytes]):
        self.code = code
        self._lines = lines  # each line without the code, separator and CRLF

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def lines(self) -> list[str]:
        return [_UNPRINTABLE.sub("?", line.decode("utf-8", "replace")) for line in self._lines]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def enhanced_code(self) -> str | None:
        match = _ENHANCED.match(self.lines[0]) if self._lines else None
        return match.group(0).strip() if match else None

    def __str__(self) -> str:
        first = self.lines[0] if self._lines else ""
        return f"{self.code} {first}".rstrip()

    def __repr__(self) -> str:
        return f"Reply({self.code}, {self.text!r})"
