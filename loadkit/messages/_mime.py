"""MIME bodies of exact sizes: multipart/alternative, multipart/mixed with attachments.

Each function returns the message's Content-Type (and Content-Transfer-Encoding)
header lines and a body of exactly ``size`` bytes, or None when ``size`` is
too small for the structure. The text parts are the filler: the structure
and the attachments are laid out first, the text takes the bytes left, to
the byte (see `loadkit.messages._text.body`).

Boundaries start with "=_", which base64 and the generated text never
contain. Attachments carry their decoded length in Content-Disposition's
``size`` parameter (RFC 2183), so a reader can check them.
"""

from __future__ import annotations

import base64
import functools
import html

from loadkit.messages._text import body

BASE64_LINE = 76  # characters: 57 bytes of data
TEXT_PART = "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
HTML_PART = "Content-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
HTML_HEAD = '<!DOCTYPE html>\r\n<html><head><meta charset="us-ascii"><title>{title}</title></head>\r\n<body><div>\r\n'
HTML_TAIL = "</div></body></html>\r\n"
TEXT_SHARE_OF_ALTERNATIVE = 0.4  # the rest is HTML, which is longer in real mail too
TEXT_WITH_ATTACHMENTS = (64, 2048)  # bytes of text before attachments, at least / at most
ATTACHMENT_COUNTS = (1, 1, 1, 1, 1, 1, 1, 2, 2, 3)  # mostly one
TITLE_ROOM = 200  # bytes kept for the HTML <title> (the Subject) when judging whether html fits a size

# (content type, file name stem, extension, magic bytes): what content filters sniff first.
ATTACHMENT_TYPES = (
    ("application/pdf", "report", "pdf", b"%PDF-1.7\n"),
    ("image/png", "image", "png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", "photo", "jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    ("application/zip", "archive", "zip", b"PK\x03\x04"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "document", "docx", b"PK\x03\x04"),
    ("application/octet-stream", "data", "bin", b""),
)


def boundary(rng) -> str:
    return f"=_lk{rng.getrandbits(64):016x}"


def alternative(lines: list[str], size: int, mark: str, title: str) -> tuple[str, bytes] | None:
    """multipart/alternative: the text, then the same text as HTML."""
    html_head = HTML_HEAD.format(title=html.escape(title))
    fixed = (f"--{mark}\r\n{TEXT_PART}--{mark}\r\n{HTML_PART}{html_head}{HTML_TAIL}--{mark}--\r\n").encode("ascii")
    free = size - len(fixed)
    if free < 2:
        return None
    text = max(2, int(free * TEXT_SHARE_OF_ALTERNATIVE))  # never 1: a text part ends with its CRLF
    content = b"".join((
        f"--{mark}\r\n{TEXT_PART}".encode("ascii"), body(lines, text),
        f"--{mark}\r\n{HTML_PART}{html_head}".encode("ascii"), body(lines, free - text),
        f"{HTML_TAIL}--{mark}--\r\n".encode("ascii"),
    ))
    return f'Content-Type: multipart/alternative; boundary="{mark}"\r\n', content


def mixed(lines: list[str], size: int, mark: str, rng) -> tuple[str, bytes] | None:
    """multipart/mixed: a short text, then 1 to 3 attachments that take most of the size."""
    text_head = f"--{mark}\r\n{TEXT_PART}".encode("ascii")
    closing = f"--{mark}--\r\n".encode("ascii")
    free = size - len(text_head) - len(closing)
    count = rng.choice(ATTACHMENT_COUNTS)
    kinds = [rng.choice(ATTACHMENT_TYPES) for _ in range(count)]
    names = [f"{stem}-{rng.getrandbits(32):08x}.{extension}" for _, stem, extension, _ in kinds]
    while kinds and free - 2 < sum(_smallest_part(mark, kind, name) for kind, name in zip(kinds, names)):
        kinds.pop(), names.pop()  # too small for that many: fewer attachments
    if not kinds:
        return None
    smallest_parts = [_smallest_part(mark, kind, name) for kind, name in zip(kinds, names)]
    least, most = TEXT_WITH_ATTACHMENTS
    text = max(2, min(max(free // 8, least), most, free - sum(smallest_parts)))
    extra = free - text - sum(smallest_parts)  # shared out among the attachments, at random
    shares = [rng.random() + 0.2 for _ in kinds]
    parts = []
    given = 0
    for index, (kind, name, least) in enumerate(zip(kinds, names, smallest_parts)):
        more = extra - given if index == len(kinds) - 1 else int(extra * shares[index] / sum(shares))
        given += more
        parts.append(_attachment(mark, kind, name, least + more, rng))  # never longer than its room
    text = free - sum(len(part) for part in parts)  # the room's slack goes to the text: still 2 or more
    content = b"".join([text_head, body(lines, text), *parts, closing])
    return f'Content-Type: multipart/mixed; boundary="{mark}"\r\n', content


def _part_head(mark: str, kind, name: str, length: int) -> bytes:
    content_type = kind[0]
    return (f"--{mark}\r\nContent-Type: {content_type}; name=\"{name}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{name}\"; size={length}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode("ascii")


def _encoded_length(length: int) -> int:
    """Bytes of ``length`` bytes in base64 lines of 76 characters, each with its CRLF."""
    characters = 4 * -(-length // 3)
    return characters + 2 * -(-characters // BASE64_LINE)


def _largest_fitting(room: int) -> int:
    """The most bytes whose base64 lines fit in ``room`` bytes (multiples of 3: no padding)."""
    full_lines, rest = divmod(room, BASE64_LINE + 2)
    length = full_lines * 57
    if rest >= 6:
        length += 3 * ((rest - 2) // 4)
    return length


def _smallest_part(mark: str, kind, name: str) -> int:
    return len(_part_head(mark, kind, name, 3)) + _encoded_length(3)


def _attachment(mark: str, kind, name: str, room: int, rng) -> bytes:
    """One attachment part of at most ``room`` bytes (at least its smallest size)."""
    length = 3
    for digits in range(len(str(max(room, 1))), 0, -1):  # the size= parameter's width depends on the length
        fitting = _largest_fitting(room - len(_part_head(mark, kind, name, 10 ** (digits - 1))))
        if len(str(fitting)) <= digits:
            length = max(3, fitting)
            break
    magic = kind[3][:length]
    data = magic + rng.randbytes(length - len(magic))
    encoded = base64.b64encode(data)
    lines = b"\r\n".join(encoded[at: at + BASE64_LINE] for at in range(0, len(encoded), BASE64_LINE))
    return _part_head(mark, kind, name, length) + lines + b"\r\n"


@functools.cache
def smallest(kind: str) -> int:
    """A lower bound of the body size the kind needs (the pool gives smaller sizes to plain messages)."""
    mark = "=_lk" + "0" * 16
    if kind == "html":
        return len(f"--{mark}\r\n{TEXT_PART}--{mark}\r\n{HTML_PART}{HTML_HEAD}{HTML_TAIL}--{mark}--\r\n") + 2 + TITLE_ROOM
    if kind == "attachments":
        longest = max(ATTACHMENT_TYPES, key=lambda kind: len(kind[0]) + 2 * len(kind[1] + kind[2]))
        name = f"{longest[1]}-{0:08x}.{longest[2]}"
        return len(f"--{mark}\r\n{TEXT_PART}--{mark}--\r\n") + _smallest_part(mark, longest, name) + 2
    return 0
