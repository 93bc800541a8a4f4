"""`MessageFactory`: a pool of messages made once, stamped per send; recipients drawn per send."""

from __future__ import annotations

import functools
import itertools
import math
import os
import random
import re
import secrets
import socket
import time
from email.header import Header
from email.utils import formatdate

from loadkit.messages import _mime
from loadkit.messages._profile import (
    EXACT_SLOTS_LIMIT,
    FixedSize,
    MailProfile,
    MessageSettingsError,
    Spread,
    counts_for,
)
from loadkit.messages._text import (
    FAKER_LOCALE,
    SUBJECT_WIDTH,
    TEXT_PER_MESSAGE,
    UTF8_LOCALES,
    ascii_only,
    body,
    equal_length_names,
    fitted_sentence,
    paragraph_lines,
    printable,
    quoted,
)
from loadkit.messages._trace import MAX_SEQUENCE, SEQUENCE_DIGITS, STAMP

MAX_HEADER_LINE = 998  # RFC 5322 2.1.1, without the CRLF
POOL_BYTES_LIMIT = 1 << 30  # a profile's pool is held in memory by every process that sends
# A pool of one fixed size holds fewer messages once they are large: variety matters
# little at that size, and 32 copies of a 200 MB message took 6.5 GB and half a minute.
FIXED_POOL_BYTES = 64 << 20
TEXT_VARIANTS = 32  # distinct body texts per locale in a pool that a profile made larger than asked

_ATOMS = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\Z")  # dot-atom, safe in Message-ID and trace
_HOSTNAME = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z")
_ADDRESS = re.compile(r"[!-~]+\Z")  # printable ASCII, no spaces
_NOT_TAG = re.compile(r"[^A-Za-z0-9._-]+")
_TEXT = re.compile(r"[ -~]*\Z")  # printable ASCII, spaces allowed
_SEQUENCES: dict[tuple[str, str], itertools.count] = {}  # (run id, source tag) -> next sequence


def default_source_tag() -> str:
    """``<short hostname>-<pid>``: tells apart the processes of one distributed run."""
    host = socket.gethostname().split(".")[0]
    return _NOT_TAG.sub("-", f"{host}-{os.getpid()}").strip(".-") or f"pid-{os.getpid()}"


def ready_for_data(message: bytes) -> bool:
    """True when the message can follow DATA as it is: no line starts with a dot, and it ends with CRLF."""
    return not message.startswith(b".") and b"\n." not in message and message.endswith(b"\r\n")


def needs_8bitmime(message: bytes) -> bool:
    """True when the message has 8-bit bytes: it must be sent with BODY=8BITMIME."""
    return not message.isascii()


def needs_smtputf8(message: bytes) -> bool:
    """True when the header block has UTF-8 (RFC 6532): the message must be sent with SMTPUTF8."""
    end = message.find(b"\r\n\r\n")
    return not message[: len(message) if end < 0 else end].isascii()


class MessageFactory:
    """A pool of Faker-made messages; `build()` stamps one for each send.

    ``payload_size`` is the exact body size in bytes (``smtp-source -l``);
    ``subject`` replaces the generated one (``smtp-source -S``); ``seed``
    makes the pool's content, its order and the recipients drawn repeatable.
    ``run_id`` and ``source_tag`` go into every Message-ID and trace header;
    by default the run id is random and the source tag is ``<short
    hostname>-<pid>``. ``dkim``, a `loadkit.dkim.DkimSigner`, signs each
    pooled message once (From, To, Subject, MIME-Version, Content-Type and
    the body; not the stamped headers). Without a size profile the pool
    holds at most 64 MiB of bodies, and always one message: ``pool_size`` is
    lowered for large messages, which are then built once.

    ``profile``, a `MailProfile` or its text (``"size=mix:realistic
    mime=attachments:0.2 recipients=1:80,2:20 domains=a.test:60,*:40"``),
    draws sizes (it then replaces ``payload_size``), MIME kinds, recipients
    and domains. The pool then holds as many messages as the profile needs
    for its shares to hold exactly over one turn of the pool (at most 1,000
    unless ``pool_size`` asks for more): 500 for ``size=mix:realistic``, 256
    for a lognormal size. Message ``n`` is pool entry ``n % len(pool)``, in
    a shuffled order, so the mix of any run of consecutive sequence numbers
    is the pool's (factories that share a run id and source tag share the
    numbers: each then holds the mix only roughly). A message too small for
    its kind's MIME structure trades kinds with a larger one, or stays plain.
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
        profile: MailProfile | str | None = None,
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
        self.profile = MailProfile.parse(profile) if profile is None or isinstance(profile, str) else profile
        self.payload_size = payload_size
        self.subject = subject
        if seed is None:
            seed = secrets.randbits(64)  # our own seed, so the pool never touches Faker's shared random

        self._stamp = STAMP.format(run=self.run_id, src=self.source_tag, host=self.hostname,
                                   digits=SEQUENCE_DIGITS).encode("ascii")
        if self.profile.size is None:
            pool_size = max(1, min(pool_size, FIXED_POOL_BYTES // max(payload_size, 1)))
        sizes, kinds = _layout(self.profile, payload_size, pool_size, random.Random(f"{seed}:layout"))
        self._pool, kinds = _make_pool(sizes, kinds, seed, subject, self.sender, self.recipient,
                                       shared_text=len(sizes) > pool_size)
        if dkim is not None:
            # Signed once per pooled message: see loadkit.dkim for why the stamped headers stay unsigned.
            self._pool = [dkim.signature_header(message) + message for message in self._pool]
        self._pool_size = len(self._pool)
        # Shared by every factory of this process with the same run and source, so that
        # several users (each with its own factory) never stamp the same sequence twice.
        self._sequence = _SEQUENCES.setdefault((self.run_id, self.source_tag), itertools.count())
        self._date = b""
        self._date_expires = 0.0  # Date: changes once a second, so format it once a second

        stamped = len(self.build(0)) - len(self._pool[0])
        self.payload_sizes = tuple(sizes)
        """Body bytes of each pooled message, in the order they are sent."""
        self.kinds = tuple(kinds)
        """MIME kind of each pooled message ("plain", "html", "attachments", "utf8", "smtputf8")."""
        self.message_sizes = tuple(stamped + len(message) for message in self._pool)
        """Bytes of each built message, in pool order: message ``n`` has ``message_sizes[n % len(...)]``."""
        self.message_size = self.message_sizes[0] if len(set(self.message_sizes)) == 1 else None
        """Bytes in every built message (for sequences up to 9,999,999,999); None when sizes vary."""
        self.needs_8bitmime = any(map(needs_8bitmime, self._pool))
        """Some messages have 8-bit bodies: send those with BODY=8BITMIME (see `needs_8bitmime`)."""
        self.needs_smtputf8 = any(map(needs_smtputf8, self._pool))
        """Some messages have UTF-8 headers: send those with SMTPUTF8 (see `needs_smtputf8`)."""
        # The stamped headers start with names, never a dot: checking the pool and one stamp covers all.
        self.ready_for_data = ready_for_data(self.build(0)[:stamped] + b"\r\n") and all(map(ready_for_data, self._pool))
        """Every built message can follow DATA as it is: no line starts with a dot (nothing to
        dot-stuff) and it ends with CRLF, so a client may skip scanning each one (`SmtpClient.send`)."""
        self._set_recipients(random.Random(f"{seed}:recipients"))

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

    def size_of(self, sequence: int) -> int:
        """Bytes of the message `build(sequence)` makes."""
        return self.message_sizes[sequence % self._pool_size]

    def recipients(self, rng: random.Random | None = None) -> list[str]:
        """Envelope recipients for one message, drawn by the profile's recipients= and domains=.

        ``rng`` (a `random.Random`) defaults to the factory's own, seeded by
        its seed. Several recipients are numbered like smtp-source -r:
        ``1user@...``, ``2user@...``; each draws its own domain. Without those
        settings: the factory's one recipient.
        """
        if not self.draws_recipients:
            return [self.recipient]
        draw = (rng or self._recipient_rng).random
        domains = self._domain_slots
        slots = len(domains)
        chosen = []
        for local in self._local_slots[int(draw() * self._local_count)]:
            candidates = domains[int(draw() * slots)]
            chosen.append(local + candidates[int(draw() * len(candidates))])
        return chosen

    def _set_recipients(self, rng: random.Random) -> None:
        profile = self.profile
        self.draws_recipients = profile.recipients is not None or profile.domains is not None
        """True when the profile draws recipients: call `recipients()` for each message."""
        self._recipient_rng = rng
        local, at, home = self.recipient.rpartition("@")
        if not at:
            local, home = self.recipient, ""
        numbered = {}
        if profile.recipients is None:
            self._local_slots = [(local,)]
        else:
            for count in profile.recipients.values:
                numbered[count] = (local,) if count == 1 else tuple(f"{n}{local}" for n in range(1, count + 1))
            self._local_slots = [numbered[count] for count in profile.recipients.table()]
        self._local_count = len(self._local_slots)
        if profile.domains is None:
            self._domain_slots = [("@" + home,) if home else ("",)]
        else:
            expanded = {value: tuple("@" + domain for domain in value.domains()) if isinstance(value, Spread)
                        else ("@" + value,) for value in profile.domains.values}
            self._domain_slots = [expanded[value] for value in profile.domains.table()]

    def __repr__(self) -> str:
        size = self.message_size if self.message_size is not None else "varies"
        return (f"MessageFactory(payload_size={self.payload_size}, run_id={self.run_id!r}, "
                f"source_tag={self.source_tag!r}, message_size={size}, profile={str(self.profile)!r})")


def _checked(value, pattern, what, rule, forbidden="", allow_empty=False, longest=64) -> str:
    usable = isinstance(value, str) and (value or allow_empty) and len(value) <= longest and pattern.match(value)
    if not usable or any(char in forbidden for char in value):
        raise ValueError(f"{what} {value!r} is not usable: {rule}")
    return value


# -- the pool: everything slow happens here, once ------------------------------------


def _layout(profile: MailProfile, payload_size: int, pool_size: int, rng: random.Random):
    """The body size and MIME kind of each pool entry, in the order they are sent."""
    sizes_from = profile.size or FixedSize(payload_size)
    slots = [sizes_from.slots()] + ([profile.mime.slots()] if profile.mime else [])
    entries = math.lcm(*slots)
    if entries > EXACT_SLOTS_LIMIT:
        entries = max(slots)  # shares then hold to within one entry
    entries *= -(-pool_size // entries)  # at least the pool asked for
    sizes = sizes_from.pool_sizes(entries, rng)
    if profile.size is not None and sum(sizes) > POOL_BYTES_LIMIT:
        raise MessageSettingsError(
            f"size={profile.size}: a pool of {entries} such messages would hold {sum(sizes) >> 20} MiB, "
            f"more than {POOL_BYTES_LIMIT >> 20} MiB: ask for smaller sizes")
    rng.shuffle(sizes)
    if profile.mime is None:
        return sizes, ["plain"] * entries
    counts = counts_for(list(profile.mime.weights), entries)
    kinds = [kind for kind, count in zip(profile.mime.values, counts) for _ in range(count)]
    rng.shuffle(kinds)
    _fit_kinds(sizes, kinds)
    return sizes, kinds


def _fit_kinds(sizes: list[int], kinds: list[str]) -> None:
    """Give a kind too big for its entry's size to a larger entry, taking that one's kind in exchange."""
    for here, kind in enumerate(kinds):
        if sizes[here] >= _mime.smallest(kind):
            continue
        for there, other in enumerate(kinds):
            if other != kind and sizes[there] >= _mime.smallest(kind) and sizes[here] >= _mime.smallest(other):
                kinds[here], kinds[there] = other, kind
                break


def _make_pool(sizes, kinds, seed, subject, sender, recipient, shared_text=False) -> tuple[list[bytes], list[str]]:
    """The pool's messages, and the kind each one got.

    ``shared_text``: a pool that a profile made larger than asked draws its
    body text from TEXT_VARIANTS sets per locale (Faker's paragraphs are
    most of the time spent here); subjects, names, sizes and attachments
    still differ per message.
    """
    from faker import Faker  # imported here: it is slow to import and only the pool needs it

    fake = Faker(FAKER_LOCALE)
    fake.seed_instance(seed)
    rng = random.Random(seed)
    names = equal_length_names(fake)
    words_by_length: dict[int, list[str]] = {}
    for word in fake.get_words_list():
        if word.isascii() and word.isalpha():
            words_by_length.setdefault(len(word), []).append(word)
    mime_rng = random.Random(f"{seed}:mime")  # its own stream: plain pools stay what they were
    international: dict[str, Faker] = {}
    variants: dict[str, list[list[str]]] = {}

    def text_lines(faker, locale, size, clean):
        if not shared_text:
            return paragraph_lines(faker, size, clean=clean)
        made = variants.setdefault(locale, [])
        if len(made) < TEXT_VARIANTS:
            made.append(paragraph_lines(faker, TEXT_PER_MESSAGE, clean=clean))
            return made[-1]
        return made[mime_rng.randrange(TEXT_VARIANTS)]

    pool, made_kinds = [], []
    for size, kind in zip(sizes, kinds):
        text = subject if subject is not None else fitted_sentence(fake, rng, words_by_length, SUBJECT_WIDTH)
        from_name, to_name = quoted(rng.choice(names)), quoted(rng.choice(names))
        if kind in ("utf8", "smtputf8"):
            locale = mime_rng.choice(UTF8_LOCALES)
            if locale not in international:
                international[locale] = Faker(locale)
                international[locale].seed_instance(f"{seed}:{locale}")
            local_fake = international[locale]
            from_name = _non_ascii(local_fake.name)
            text = subject if subject is not None else _non_ascii(functools.partial(local_fake.sentence, nb_words=6))
            if kind == "utf8":  # RFC 2047 encoded words: 7-bit headers, only the body needs 8BITMIME
                from_name = Header(from_name, "utf-8").encode(linesep="\r\n")
                text = Header(text, "utf-8", header_name="Subject").encode(linesep="\r\n")
            else:
                from_name = quoted(from_name)
            content_type = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            content = body(text_lines(local_fake, locale, size, printable), size)
        else:
            lines = text_lines(fake, FAKER_LOCALE, size, ascii_only)
            made = None
            if kind == "html":
                made = _mime.alternative(lines, size, _mime.boundary(mime_rng), text)
            elif kind == "attachments":
                made = _mime.mixed(lines, size, _mime.boundary(mime_rng), mime_rng)
            if made is None:
                kind = "plain"
                content_type = "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n"
                content = body(lines, size)
            else:
                content_type, content = made
        headers = (
            f"From: {from_name} <{sender}>\r\n"
            f"To: {to_name} <{recipient}>\r\n"
            f"Subject: {text}\r\n"
            "MIME-Version: 1.0\r\n"
            f"{content_type}"
            "\r\n"
        )
        pool.append(headers.encode("utf-8") + content)
        made_kinds.append(kind)
    return pool, made_kinds


def _non_ascii(draw, tries: int = 50) -> str:
    """A Faker text with at least one non-ASCII character (French or German text may have none)."""
    for _ in range(tries):
        text = printable(draw())
        if not text.isascii():
            return text
    return text + " \u2013 \u00e9t\u00e9"
