"""Faker text cut to exact byte counts: names, subjects, body lines (ASCII or UTF-8).

Everything here runs while a pool is made, never per message.
"""

from __future__ import annotations

import itertools
import textwrap
from collections import Counter

BODY_WIDTH = 76
SUBJECT_WIDTH = 48  # a generated Subject is fitted to exactly this many characters
FAKER_LOCALE = "en_US"  # its names and lorem words are plain ASCII
# Locales of the UTF-8 kinds: Latin with accents, Cyrillic, Greek, CJK (1 to 3 bytes a character).
UTF8_LOCALES = ("de_DE", "fr_FR", "pl_PL", "ru_RU", "el_GR", "ja_JP")
TEXT_PER_MESSAGE = 4096  # Faker text made per pool message; longer bodies repeat it
NAME_CANDIDATES = 1000  # Faker names drawn at most to find equal-length ones
NAMES_WANTED = 32  # distinct names per length is plenty: From/To pairs are drawn from them


def equal_length_names(fake) -> list[str]:
    """Faker names that all have the most common length, so every From/To pair has one size."""
    by_length: dict[int, list[str]] = {}
    counts: Counter[int] = Counter()
    for drawn in range(NAME_CANDIDATES):
        name = ascii_only(fake.name())
        if not name:
            continue
        by_length.setdefault(len(name), []).append(name)
        counts[len(name)] += 1
        if drawn >= NAMES_WANTED and counts.most_common(1)[0][1] >= NAMES_WANTED:
            break
    length, _ = counts.most_common(1)[0]
    return sorted(set(by_length[length]))


def quoted(name: str) -> str:
    # Always quoted: Faker names carry "." ("Dr.", "Jr.") and "'" which a bare phrase may not.
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ascii_only(text: str) -> str:
    if text.isascii() and text.isprintable():  # the usual case, without a step per character
        return text
    return "".join(char for char in text if " " <= char <= "~")


def printable(text: str) -> str:
    """``text`` without control characters, any script kept (for UTF-8 headers and bodies)."""
    return text if text.isprintable() else "".join(char for char in text if char.isprintable())


def fitted_sentence(fake, rng, words_by_length, width) -> str:
    """A Faker sentence of exactly ``width`` characters, ending with "."."""
    lengths = sorted(words_by_length)
    longest = lengths[-1]
    words = [word for word in fake.sentence(nb_words=12).rstrip(".").split() if word.isalpha()]
    text = words.pop(0) if words else "Hello"
    gap = width - 1 - len(text)  # the last character is the "."
    while gap > longest + 3:  # whole words while any word still leaves room for " x"
        word = words.pop(0) if words else rng.choice(words_by_length[rng.choice(lengths)])
        text += " " + word
        gap -= len(word) + 1
    while gap > 0:  # then fill the gap exactly; it is at least 2 here
        fill = gap - 1 if gap - 1 in words_by_length else max(n for n in lengths if n <= gap - 3)
        text += " " + rng.choice(words_by_length[fill])
        gap -= fill + 1
    return text + "."


def paragraph_lines(fake, payload_size, clean=ascii_only) -> list[str]:
    """Wrapped Faker paragraphs, blank lines between them, enough to start a body."""
    lines: list[str] = []
    made = 0
    while made < min(payload_size, TEXT_PER_MESSAGE) or not lines:
        paragraph = clean(fake.paragraph(nb_sentences=5))
        wrapped = textwrap.wrap(paragraph, BODY_WIDTH, break_on_hyphens=False)
        if lines:
            lines.append("")
        lines.extend(line for line in wrapped if not line.startswith("."))
        made += len(paragraph) + 2 * len(wrapped)
    return lines


def body(lines: list[str], size: int) -> bytes:
    """Exactly ``size`` bytes of CRLF-terminated lines taken from ``lines``, repeated as needed.

    Lines are UTF-8; ASCII lines give 7-bit text. A line cut to fit never
    ends inside a character: the bytes of a cut character become "."s.
    """
    if size == 0:
        return b""
    encoded = [line.encode("utf-8") for line in lines]
    if not any(encoded):
        encoded = [b"x"]  # never loop on blank lines alone
    if size == 1:
        first = encoded[0][:1]
        return first if first and first.isascii() else b"x"
    # Whole turns of the text first, as one repeated block: the same bytes the
    # line loop below would make, without a Python step per line of a large body.
    turn = b"".join(line + b"\r\n" for line in encoded + [b""])
    turns = max(0, size // len(turn) - 1)  # leaves the loop at least one turn: its end is what it decides
    out: list[bytes] = [turn * turns] if turns else []
    left = size - turns * len(turn)  # never 1 after a line: that could not be a CRLF-terminated line
    for line in itertools.cycle(encoded + [b""]):
        cost = len(line) + 2
        if cost < left - 1:
            out.append(line)
            left -= cost
        elif cost == left:
            out.append(line)
            break
        elif cost == left - 1:  # the next line would have to be 1 byte: shorten this one
            if line:
                out.append(cut(line, len(line) - 1))
                left -= cost - 1
            # an empty line cannot shrink; skip it and try the next
        else:  # cost > left: cut this line to fit and stop
            out.append(cut(line, left - 2))
            break
    return out[0] + b"\r\n".join(out[1:] + [b""]) if turns else b"\r\n".join(out + [b""])


def cut(line: bytes, length: int) -> bytes:
    """The first ``length`` bytes, ending with "." rather than a space or part of a character."""
    piece = line[:length]
    if not piece.isascii():
        whole = piece.decode("utf-8", "ignore").encode("utf-8")  # drops a character cut in two
        piece = whole + (b"." if whole else b"x") * (length - len(whole))
    return piece[:-1] + b"." if piece.endswith(b" ") else piece
