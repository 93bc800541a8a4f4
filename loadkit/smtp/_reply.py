"""SMTP replies, read defensively.

Multi-line replies are joined, every line is capped in length (MAX_LINE)
and so is a whole multi-line reply (MAX_REPLY), and non-printable
characters are censored before anyone shows the text.

A reply read off the wire keeps its raw bytes and is split into lines only
when someone asks for its text: a load run looks at nothing but the code of
almost every reply.
"""

from __future__ import annotations

import re

MAX_LINE = 4096  # RFC 5321 allows 512; be generous, but never unbounded
MAX_REPLY = 65536  # a multi-line reply past this is refused: a server sending "250-" forever costs no memory
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")

REPLY_CODES = {b"%03d" % number: number for number in range(1000)}
"""Three ASCII digits -> the code as an int: one dict lookup both checks and converts."""


def censored(line: bytes) -> str:
    """A reply line as text that is safe to show: anything but printable ASCII becomes "?"."""
    text = line.decode("latin-1")
    if text.isascii() and text.isprintable():  # the usual line, checked in C
        return text
    return _UNPRINTABLE.sub("?", line.decode("utf-8", "replace"))


class Reply:
    """One (possibly multi-line) reply. Text is decoded only when asked for.

    ``lines`` are the lines without code, separator and CRLF. The client
    passes ``wire`` instead: the reply's lines as received (code, separator,
    text, LF or CRLF each), split only when text is wanted.
    """

    __slots__ = ("code", "_lines", "_wire")

    def __init__(self, code: int, lines: list[bytes] | None = None, wire: bytes = b""):
        self.code = code
        self._lines = lines
        self._wire = wire

    @property
    def raw_lines(self) -> list[bytes]:
        """Each line without code, separator and line end, undecoded."""
        if self._lines is None:
            self._lines = [line.rstrip(b"\r")[4:] for line in self._wire.split(b"\n")[:-1]]
        return self._lines

    @property
    def wire(self) -> bytes:
        """The reply as the client received it (b"" for a reply made from ``lines``)."""
        return self._wire

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def lines(self) -> list[str]:
        return [censored(line) for line in self.raw_lines]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def enhanced_code(self) -> str | None:
        match = _ENHANCED.match(self.lines[0]) if self.raw_lines else None
        return match.group(0).strip() if match else None

    def __str__(self) -> str:
        first = self.lines[0] if self.raw_lines else ""
        return f"{self.code} {first}".rstrip()

    def __repr__(self) -> str:
        return f"Reply({self.code}, {self.text!r})"
