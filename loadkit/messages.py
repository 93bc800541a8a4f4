"""The messages loadkit sends: Faker-made once, stamped per message.

Faker costs tens of microseconds per call, far too much for a send loop, so a
`MessageFactory` makes a pool of messages when it starts (From and To display
names, Subject, body paragraphs) and `build()` only stamps the headers that
must differ per message onto one of them::

    Date: Thu, 26 Nov 2026 00:15:01 GMT
    Message-ID: <1f2e3d4c.mx1-4242.0000000042@loadkit.test>
    X-Loadkit-Trace: run=1f2e3d4c; src=mx1-4242; seq=0000000042; t=1795652101.123456

Stamping is one ``bytes %`` format and one concatenation: no Faker and no
`email` package in the send loop. The sink reads the trace header back with
`parse_trace` to measure end-to-end delivery time and to find lost or
duplicated mail.

Sizes are exact, as with Postfix's ``smtp-source -l``: ``payload_size`` is the
number of bytes after the blank line that ends the headers, CRLF counted as 2.
The body is 7-bit text wrapped at 76 characters, every line CRLF-terminated;
its last line is cut to fit (a cut that ends on a space ends with a "."
instead). The one size that cannot end in CRLF is 1: that body is a single
letter, and the SMTP client's end-of-data CRLF ends the line on the wire.
The header block has the same length in every message of a factory (fixed
width sequence and time, equal-length names, a Subject fitted to a fixed
width), so `MessageFactory.message_size` is the exact size of every message.

Nothing here dot-stuffs: the SMTP client does that on the wire. No generated
line starts with "." anyway.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import secrets
import socket
import textwrap
import time
from collections import Counter
from email.utils import formatdate
from typing import NamedTuple

__all__ = ["MessageFactory", "Trace", "parse_trace", "TRACE_HEADER"]

TRACE_HEADER = "X-Loadkit-Trace"
SEQUENCE_DIGITS = 10  # zero-padded, so the header block keeps its length
MAX_SEQUENCE = 10**SEQUENCE_DIGITS - 1
BODY_WIDTH = 76
SUBJECT_WIDTH = 48  # a generated Subject is fitted to exactly this many characters
MAX_HEADER_LINE = 998  # RFC 5322 2.1.1, without the CRLF
FAKER_LOCALE = "en_US"  # its names and lorem words are plain ASCII
TEXT_PER_MESSAGE = 4096  # Faker text made per pool message; longer bodies repeat it
NAME_CANDIDATES = 1000  # Faker names drawn at most to find equal-length ones
NAMES_WANTED = 32  # distinct names per length is plenty: From/To pairs are drawn from them

_ATOMS = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\Z")  # dot-atom, safe in Message-ID and trace
_HOSTNAME = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z")
_ADDRESS = re.compile(r"[!-~]+\Z")  # printable ASCII, no spaces
_NOT_TAG = re.compile(r"[^A-Za-z0-9._-]+")
_TEXT = re.compile(r"[ -~]*\Z")  # printable ASCII, spaces allowed
_SEQUENCES: dict[tuple[str, str], itertools.count] = {}  # (run id, source tag) -> next sequence

_STAMP = (
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


def default_source_tag() -> str:
    """``<short hostname>-<pid>``: tells apart the processes of one distributed run."""
    host = socket.gethostname().split(".")[0]
    return _NOT_TAG.sub("-", f"{host}-{os.getpid()}").strip(".-") or f"pid-{os.getpid()}"


class MessageFactory:
    """A pool of Faker-made messages; `build()` stamps one for each send.

    ``payload_size`` is the exact body size in bytes (``smtp-source -l``);
    ``subject`` replaces the generated one (``smtp-source -S``); ``seed``
    makes the pool's content repeatable. ``run_id`` and ``source_tag`` go into
    every Message-ID and trace header; by default the run id is random and
    the source tag is ``<short hostname>-<pid>``. ``dkim``, a
    `loadkit.dkim.DkimSigner`, signs each pooled message once (From, To,
    Subject, MIME-Version, Content-Type and the body; not the stamped headers).
    """

    def __init__(
        self,
        payload_size: int = 5120,
        pool_size: int = 32,
        seed: int | None = None,
        run_id: str | None = None,
        source_tag: str | None = None,
        subject: str | None = None,
        sender: str = "loadkit@loadkit.test",
        recipient: str = "user@loadkit.test",
        hostname: str = "loadkit.test",
        dkim=None,
    ):
        if isinstance(payload_size, bool) or not isinstance(payload_size, int) or payload_size < 0:
            raise ValueError(f"payload size must be a whole number of bytes, 0 or more, not {payload_size!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool size must be a whole number, 1 or more, not {pool_size!r}")
        atoms = "use ASCII letters, digits, '_', '-', and single dots between them"
        address = "use printable ASCII without spaces, quotes, brackets or parentheses"
        self.run_id = secrets.token_hex(4) if run_id is None else _checked(run_id, _ATOMS, "run id", atoms)
        self.source_tag = (
            default_source_tag() if source_tag is None else _checked(source_tag, _ATOMS, "source tag", atoms)
        )
        self.hostname = _checked(hostname, _HOSTNAME, "hostname", "use a domain name such as mx.test", longest=253)
        self.sender = _checked(sender, _ADDRESS, "sender address", address, '<>"()', longest=254)
        self.recipient = _checked(recipient, _ADDRESS, "recipient address", address, '<>"()', longest=254)
        if subject is not None:
            _checked(subject, _TEXT, "subject", "use printable ASCII on one line, at most 989 characters",
                     allow_empty=True, longest=MAX_HEADER_LINE - len("Subject: "))
        self.payload_size = payload_size
        self.subject = subject

        self._stamp = _STAMP.format(run=self.run_id, src=self.source_tag, host=self.hostname,
                                    digits=SEQUENCE_DIGITS).encode("ascii")
        self._pool = _make_pool(payload_size, pool_size, seed, subject, self.sender, self.recipient)
        if dkim is not None:
            # Signed once per pooled message: see loadkit.dkim for why the stamped headers stay unsigned.
            self._pool = [dkim.signature_header(message) + message for message in self._pool]
        self._pool_size = pool_size
        # Shared by every factory of this process with the same run and source, so that
        # several users (each with its own factory) never stamp the same sequence twice.
        self._sequence = _SEQUENCES.setdefault((self.run_id, self.source_tag), itertools.count())
        self._date = b""
        self._date_expires = 0.0  # Date: changes once a second, so format it once a second

        sizes = {len(message) for message in self._pool}
        assert len(sizes) == 1, "pool messages differ in size"
        self.message_size = len(self.build(0))
        """Bytes in every built message (for sequences up to 9,999,999,999)."""

    def build(self, sequence: int | None = None) -> bytes:
        """One message, stamped now: CRLF line ends, not dot-stuffed.

        ``sequence`` defaults to a counter (0, 1, 2, ...) shared by all the
        factories of this process with the same run id and source tag; pass
        one only to number messages yourself, uniquely for that pair.
        """
        if sequence is None:
            sequence = next(self._sequence)
        elif not 0 <= sequence <= MAX_SEQUENCE:
            raise ValueError(f"sequence must be 0 to {MAX_SEQUENCE}, not {sequence!r}")
        now = time.time()
        if not self._date_expires - 1.0 <= now < self._date_expires:  # a new second, or the clock stepped back
            second = int(now)
            self._date = formatdate(second, usegmt=True).encode("ascii")
            self._date_expires = second + 1.0
        return self._stamp % (self._date, sequence, sequence, now) + self._pool[sequence % self._pool_size]

    def __repr__(self) -> str:
        return (f"MessageFactory(payload_size={self.payload_size}, run_id={self.run_id!r}, "
                f"source_tag={self.source_tag!r}, message_size={self.message_size})")


def _checked(value, pattern, what, rule, forbidden="", allow_empty=False, longest=64) -> str:
    usable = isinstance(value, str) and (value or allow_empty) and len(value) <= longest and pattern.match(value)
    if not usable or any(char in forbidden for char in value):
        raise ValueError(f"{what} {value!r} is not usable: {rule}")
    return value


# -- the pool: everything slow happens here, once ------------------------------------


def _make_pool(payload_size, pool_size, seed, subject, sender, recipient) -> list[bytes]:
    from faker import Faker  # imported here: it is slow to import and only the pool needs it

    if seed is None:
        seed = secrets.randbits(64)  # our own seed, so the pool never touches Faker's shared random
    fake = Faker(FAKER_LOCALE)
    fake.seed_instance(seed)
    rng = random.Random(seed)
    names = _equal_length_names(fake)
    words_by_length: dict[int, list[str]] = {}
    for word in fake.get_words_list():
        if word.isascii() and word.isalpha():
            words_by_length.setdefault(len(word), []).append(word)

    pool = []
    for _ in range(pool_size):
        text = subject if subject is not None else _fitted_sentence(fake, rng, words_by_length, SUBJECT_WIDTH)
        headers = (
            f"From: {_quoted(rng.choice(names))} <{sender}>\r\n"
            f"To: {_quoted(rng.choice(names))} <{recipient}>\r\n"
            f"Subject: {text}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "Content-Transfer-Encoding: 7bit\r\n"
            "\r\n"
        )
        pool.append(headers.encode("ascii") + _body(_paragraph_lines(fake, payload_size), payload_size))
    return pool


def _equal_length_names(fake) -> list[str]:
    """Faker names that all have the most common length, so every From/To pair has one size."""
    by_length: dict[int, list[str]] = {}
    counts: Counter[int] = Counter()
    for drawn in range(NAME_CANDIDATES):
        name = _ascii(fake.name())
        if not name:
            continue
        by_length.setdefault(len(name), []).append(name)
        counts[len(name)] += 1
        if drawn >= NAMES_WANTED and counts.most_common(1)[0][1] >= NAMES_WANTED:
            break
    length, _ = counts.most_common(1)[0]
    return sorted(set(by_length[length]))


def _quoted(name: str) -> str:
    # Always quoted: Faker names carry "." ("Dr.", "Jr.") and "'" which a bare phrase may not.
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ascii(text: str) -> str:
    return "".join(char for char in text if " " <= char <= "~")


def _fitted_sentence(fake, rng, words_by_length, width) -> str:
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


def _paragraph_lines(fake, payload_size) -> list[str]:
    """Wrapped Faker paragraphs, blank lines between them, enough to start a body."""
    lines: list[str] = []
    made = 0
    while made < min(payload_size, TEXT_PER_MESSAGE) or not lines:
        paragraph = _ascii(fake.paragraph(nb_sentences=5))
        wrapped = textwrap.wrap(paragraph, BODY_WIDTH, break_on_hyphens=False)
        if lines:
            lines.append("")
        lines.extend(line for line in wrapped if not line.startswith("."))
        made += len(paragraph) + 2 * len(wrapped)
    return lines


def _body(lines: list[str], size: int) -> bytes:
    """Exactly ``size`` bytes of CRLF-terminated lines taken from ``lines``, repeated as needed."""
    if size == 0:
        return b""
    if not any(lines):
        lines = ["x"]  # never loop on blank lines alone
    if size == 1:
        return lines[0][:1].encode("ascii") or b"x"
    out: list[str] = []
    left = size  # never 1 after a line: that could not be a CRLF-terminated line
    for line in itertools.cycle(lines + [""]):
        cost = len(line) + 2
        if cost < left - 1:
            out.append(line)
            left -= cost
        elif cost == left:
            out.append(line)
            break
        elif cost == left - 1:  # the next line would have to be 1 byte: shorten this one
            if line:
                out.append(_cut(line, len(line) - 1))
                left -= cost - 1
            # an empty line cannot shrink; skip it and try the next
        else:  # cost > left: cut this line to fit and stop
            out.append(_cut(line, left - 2))
            break
    out.append("")
    return "\r\n".join(out).encode("ascii")


def _cut(line: str, length: int) -> str:
    """The first ``length`` characters, ending with "." rather than a trailing space."""
    cut = line[:length]
    return cut[:-1] + "." if cut.endswith(" ") else cut


# -- reading traces back (the sink, for every message) -------------------------------

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
