"""What a factory sends, as one line of settings: sizes, MIME kinds, recipients, domains.

A `MailProfile` is parsed from settings separated by spaces or ";", each
``NAME=VALUE``; every one is optional::

    size=5120                       every body exactly 5120 bytes (the default: smtp-source -l)
    size=fixed:5k                   the same, spelled out
    size=lognormal:20k:1.0          lognormal: median 20 KiB, spread 1.0 (the standard deviation of ln size)
    size=mix:realistic              the built-in table below
    size=mix:1k:20,4k-16k:50,1m:30  a table of buckets: SIZE or LOW-HIGH, then a weight
    mime=attachments:0.2,html:0.3,utf8:0.1    the share of each kind; plain text is the rest
    recipients=1:80,2:15,5:5        recipients per message, by weight
    domains=example.com:60,example.net:25,*:15   recipient domains by weight

Sizes are bytes, or with a unit: ``k``/``KiB`` = 1024, ``m``/``MiB`` =
1024 * 1024. A size is always a body's: the bytes after the blank line that
ends the message's own headers, as smtp-source's ``-l`` (for a MIME
message: all its parts, their headers and boundaries included). Weights are
relative (``60,25,15`` and ``0.6,0.25,0.15`` are the same); a bucket LOW-HIGH
holds LOW up to, not including, HIGH (``1k-2k`` is 1024 to 2047); a MIME share is
a fraction or a percentage (``0.2`` or ``20%``).

The size table ``realistic`` (payload bytes, weight in percent)::

    512-1k 10    1k-2k 15    2k-4k 20    4k-8k 18    8k-16k 12    16k-32k 9
    32k-64k 6    64k-128k 4  128k-512k 3.6  512k-1m 1.6  1m-4m 0.6  4m-8m 0.2

It follows the shape of published mail-server workloads such as SPECmail's
message-size mix (most mail a few KiB, a long tail of attachments) with
loadkit's own figures: median about 6 KiB, mean about 66 KiB, the largest
under Postfix's default message_size_limit (10,240,000 bytes).

MIME kinds:

    plain        text/plain, us-ascii, 7bit (the messages of a profile without mime=)
    html         multipart/alternative: text/plain and text/html
    attachments  multipart/mixed: text/plain, then 1 to 3 base64 attachments of
                 random bytes (application/pdf, image/png, image/jpeg, application/zip, ...)
    utf8         text/plain, utf-8, 8bit; UTF-8 Subject and From name as RFC 2047
                 encoded words: the message needs BODY=8BITMIME
    smtputf8     as utf8, with raw UTF-8 in Subject and From (RFC 6532): the
                 message needs SMTPUTF8 (and BODY=8BITMIME)

Domains: a name, or ``*`` for many generated domains sharing the weight
evenly: ``*`` is 100 of them (``d000.spread.test`` ... ``d099.spread.test``),
``*500`` is 500, ``*20.relay.test`` is 20 under ``relay.test``. Each
recipient of a message draws its own domain, so a relay builds one queue per
destination, as in production.

Bad settings raise `MessageSettingsError` (a `UsageError`, so the CLI prints
it in one line; also a `ValueError`, like the factory's other complaints).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist

from loadkit.errors import UsageError

KINDS = ("plain", "html", "attachments", "utf8", "smtputf8")
MAX_SIZE = 64 * 1024 * 1024  # per message: past this a pool of them would not fit in memory
MAX_RECIPIENTS = 1000
MAX_SPREAD = 100_000
DEFAULT_SPREAD = 100
SPREAD_PARENT = "spread.test"
LOGNORMAL_SLOTS = 256  # pool entries at least, for a continuous size distribution
EXACT_SLOTS_LIMIT = 1000  # pool entries at most to represent weights exactly
SAMPLING_SLOTS_LIMIT = 10_000  # table entries at most to draw recipients and domains by weight

REALISTIC = "512-1k:10,1k-2k:15,2k-4k:20,4k-8k:18,8k-16k:12,16k-32k:9,32k-64k:6,64k-128k:4," \
            "128k-512k:3.6,512k-1m:1.6,1m-4m:0.6,4m-8m:0.2"
SIZE_TABLES = {"realistic": REALISTIC}

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)\Z")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?\Z|\.[0-9]+\Z")
_DOMAIN = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")
_SPREAD = re.compile(r"\*([0-9]*)(?:\.(.+))?\Z")


class MessageSettingsError(UsageError, ValueError):
    """A size, MIME, recipients or domains setting that cannot be used; one line."""


# -- sizes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedSize:
    """Every body exactly ``size`` bytes."""

    size: int

    def slots(self) -> int:
        return 1

    def pool_sizes(self, count: int, rng) -> list[int]:
        return [self.size] * count

    def __str__(self) -> str:
        return f"fixed:{self.size}"


@dataclass(frozen=True)
class LognormalSize:
    """Body sizes whose logarithm is normal: ``median`` bytes, ``spread`` the standard deviation of ln(size)."""

    median: int
    spread: float

    def slots(self) -> int:
        return LOGNORMAL_SLOTS

    def cdf(self, size: float) -> float:
        if size <= 0:
            return 0.0
        return NormalDist().cdf(math.log(size / self.median) / self.spread)

    def pool_sizes(self, count: int, rng) -> list[int]:
        # Stratified: one draw in each 1/count of the probability, so a pool of
        # a few hundred already follows the distribution closely.
        normal = NormalDist()
        sizes = []
        for stratum in range(count):
            p = (stratum + 0.001 + 0.998 * rng.random()) / count
            size = self.median * math.exp(self.spread * normal.inv_cdf(p))
            sizes.append(min(MAX_SIZE, max(0, round(size))))
        return sizes

    def __str__(self) -> str:
        return f"lognormal:{self.median}:{self.spread:g}"


@dataclass(frozen=True)
class SizeBucket:
    low: int
    high: int  # excluded: 1k-2k is 1024 to 2047; a single size N is N to N+1
    weight: Fraction


@dataclass(frozen=True)
class SizeTable:
    """Body sizes from buckets by weight; within a bucket, spread evenly from low up to high."""

    buckets: tuple[SizeBucket, ...]
    name: str | None = None

    def slots(self) -> int:
        return exact_total([bucket.weight for bucket in self.buckets], EXACT_SLOTS_LIMIT) or EXACT_SLOTS_LIMIT

    def shares(self) -> list[float]:
        total = sum(bucket.weight for bucket in self.buckets)
        return [float(bucket.weight / total) for bucket in self.buckets]

    def bucket_of(self, size: int) -> int | None:
        for index, bucket in enumerate(self.buckets):
            if bucket.low <= size < bucket.high:
                return index
        return None

    def pool_sizes(self, count: int, rng) -> list[int]:
        sizes = []
        for bucket, entries in zip(self.buckets, counts_for([b.weight for b in self.buckets], count)):
            width = bucket.high - bucket.low
            for stratum in range(entries):
                sizes.append(bucket.low + min(width - 1, int(width * (stratum + rng.random()) / entries)))
        return sizes

    def __str__(self) -> str:
        if self.name:
            return f"mix:{self.name}"
        return "mix:" + ",".join(
            (f"{b.low}" if b.high == b.low + 1 else f"{b.low}-{b.high}") + f":{_weight_text(b.weight)}" for b in self.buckets
        )


SizeDistribution = FixedSize | LognormalSize | SizeTable


def parse_size(text: str) -> SizeDistribution:
    """``5120``, ``fixed:5k``, ``lognormal:20k:1.0``, ``mix:realistic`` or ``mix:1k:20,4k-16k:80``."""
    what = f"size {text!r}"
    kind, _, rest = text.strip().partition(":")
    if not rest and _SIZE.match(kind):
        return FixedSize(_bytes(kind, what))
    if kind == "fixed":
        return FixedSize(_bytes(rest, what))
    if kind == "lognormal":
        parts = rest.split(":")
        if len(parts) != 2:
            raise MessageSettingsError(f"{what}: expected lognormal:MEDIAN:SPREAD, e.g. lognormal:20k:1.0")
        median = _bytes(parts[0], what)
        spread = _number(parts[1], what, "spread")
        if median < 1 or not 0 < spread <= 4:
            raise MessageSettingsError(f"{what}: the median must be 1 byte or more and the spread above 0, at most 4")
        return LognormalSize(median, spread)
    if kind == "mix":
        name = rest.strip()
        if name in SIZE_TABLES:
            return SizeTable(_parse_buckets(SIZE_TABLES[name], what), name)
        if re.fullmatch(r"[A-Za-z_]+", name):
            raise MessageSettingsError(f"{what}: no size table {name!r}; known: {', '.join(SIZE_TABLES)}")
        return SizeTable(_parse_buckets(rest, what))
    raise MessageSettingsError(
        f"{what}: expected SIZE, fixed:SIZE, lognormal:MEDIAN:SPREAD or mix:NAME|SIZE:WEIGHT,..."
    )


def _parse_buckets(text: str, what: str) -> tuple[SizeBucket, ...]:
    buckets = []
    for item in _items(text, what):
        sizes, weight = _pair(item, what, "SIZE:WEIGHT or LOW-HIGH:WEIGHT")
        low_text, dash, high_text = sizes.partition("-")
        low = _bytes(low_text, what)
        high = _bytes(high_text, what) if dash else low + 1
        if high <= low:
            raise MessageSettingsError(f"{what}: bucket {sizes} must run from a smaller size to a larger one")
        buckets.append(SizeBucket(low, high, weight))
    ordered = sorted(buckets, key=lambda bucket: bucket.low)
    for before, after in itertools.pairwise(ordered):
        if after.low < before.high:
            raise MessageSettingsError(f"{what}: buckets {before.low}-{before.high} and {after.low}-{after.high} overlap")
    return tuple(ordered)


# -- MIME kinds, recipient counts, domains ---------------------------------------------


@dataclass(frozen=True)
class Weighted:
    """Values with relative weights (exact fractions)."""

    values: tuple
    weights: tuple[Fraction, ...]

    def shares(self) -> list[float]:
        total = sum(self.weights)
        return [float(weight / total) for weight in self.weights]

    def slots(self) -> int:
        return exact_total(list(self.weights), EXACT_SLOTS_LIMIT) or EXACT_SLOTS_LIMIT

    def table(self, limit: int = SAMPLING_SLOTS_LIMIT) -> list:
        """The values repeated by weight: a uniform pick from it is a pick by weight."""
        size = exact_total(list(self.weights), limit) or limit
        return [value for value, count in zip(self.values, counts_for(list(self.weights), size)) for _ in range(count)]

    def __str__(self) -> str:
        return ",".join(f"{value}:{_weight_text(weight)}" for value, weight in zip(self.values, self.weights))


class MimeMix(Weighted):
    """Shares of the MIME kinds; ``plain`` holds what the others leave."""


class RecipientCounts(Weighted):
    """Recipients per message, by weight."""


@dataclass(frozen=True)
class Spread:
    """``count`` generated domains under ``parent``, sharing one weight evenly."""

    count: int
    parent: str

    def domains(self) -> tuple[str, ...]:
        digits = len(str(self.count - 1))
        return tuple(f"d{n:0{digits}d}.{self.parent}" for n in range(self.count))

    def __str__(self) -> str:
        return "*" + (str(self.count) if self.count != DEFAULT_SPREAD else "") + (
            "" if self.parent == SPREAD_PARENT else "." + self.parent)


class DomainMix(Weighted):
    """Recipient domains by weight; a `Spread` entry stands for many domains."""


def parse_mime(text: str) -> MimeMix:
    """``attachments:0.2,html:30%``: the share of each kind; plain text is the rest."""
    what = f"mime {text!r}"
    shares: dict[str, Fraction] = {}
    for item in _items(text, what):
        kind, share = _pair(item, what, "KIND:SHARE", share=True)
        if kind not in KINDS:
            raise MessageSettingsError(f"{what}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
        if kind in shares:
            raise MessageSettingsError(f"{what}: {kind} given twice")
        if share > 1:
            raise MessageSettingsError(f"{what}: a share is 0 to 1 (or 0% to 100%), not {item.split(':', 1)[1]}")
        shares[kind] = share
    total = sum(shares.values())
    if total > 1:
        raise MessageSettingsError(f"{what}: the shares add up to {float(total):g}, more than 1")
    shares["plain"] = shares.get("plain", Fraction(0)) + 1 - total
    kinds = [kind for kind in KINDS if shares.get(kind)]
    return MimeMix(tuple(kinds), tuple(shares[kind] for kind in kinds))


def parse_recipients(text: str) -> RecipientCounts:
    """``1:80,2:15,5:5`` (count:weight), or one count for every message."""
    what = f"recipients {text!r}"
    if text.strip().isdigit():
        items = [(text.strip(), Fraction(1))]
    else:
        items = [_pair(item, what, "COUNT:WEIGHT") for item in _items(text, what)]
    counts = []
    for count_text, _ in items:
        if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_RECIPIENTS:
            raise MessageSettingsError(f"{what}: a count is a whole number from 1 to {MAX_RECIPIENTS}, not {count_text!r}")
        counts.append(int(count_text))
    if len(set(counts)) != len(counts):
        raise MessageSettingsError(f"{what}: a count is given twice")
    return RecipientCounts(tuple(counts), tuple(weight for _, weight in items))


def parse_domains(text: str) -> DomainMix:
    """``example.com:60,example.net:25,*:15``, or one domain for every recipient."""
    what = f"domains {text!r}"
    items = _items(text, what)
    if len(items) == 1 and ":" not in items[0]:
        items = [items[0] + ":1"]
    values, weights = [], []
    for item in items:
        name, weight = _pair(item, what, "DOMAIN:WEIGHT")
        spread = _SPREAD.match(name)
        if spread:
            count = int(spread.group(1)) if spread.group(1) else DEFAULT_SPREAD
            parent = spread.group(2) or SPREAD_PARENT
            if not 1 <= count <= MAX_SPREAD or not _DOMAIN.match(parent):
                raise MessageSettingsError(f"{what}: {name!r}: expected *, *COUNT or *COUNT.PARENT "
                                           f"(COUNT 1 to {MAX_SPREAD})")
            value = Spread(count, parent.lower())
        elif _DOMAIN.match(name):
            value = name.lower()
        else:
            raise MessageSettingsError(f"{what}: {name!r} is not a domain name")
        if value in values:
            raise MessageSettingsError(f"{what}: {name} given twice")
        values.append(value)
        weights.append(weight)
    return DomainMix(tuple(values), tuple(weights))


# -- the profile ----------------------------------------------------------------------


@dataclass(frozen=True)
class MailProfile:
    """Sizes, MIME kinds, recipients per message and their domains; None keeps the factory's own."""

    size: SizeDistribution | None = None
    mime: MimeMix | None = None
    recipients: RecipientCounts | None = None
    domains: DomainMix | None = None

    @classmethod
    def parse(cls, text: str | None) -> MailProfile:
        """``size=... mime=... recipients=... domains=...`` (see the module docstring)."""
        parsers = {"size": parse_size, "mime": parse_mime, "recipients": parse_recipients, "domains": parse_domains}
        settings: dict = {}
        for item in re.split(r"[\s;]+", (text or "").strip()):
            if not item:
                continue
            name, equals, value = item.partition("=")
            if name not in parsers or not equals:
                raise MessageSettingsError(
                    f"mail profile: {item!r} is not NAME=VALUE with NAME one of {', '.join(parsers)}")
            if name in settings:
                raise MessageSettingsError(f"mail profile: {name}= given twice")
            settings[name] = parsers[name](value)
        return cls(**settings)

    def __str__(self) -> str:
        return " ".join(f"{name}={value}" for name, value in
                        (("size", self.size), ("mime", self.mime), ("recipients", self.recipients),
                         ("domains", self.domains)) if value is not None)


# -- exact shares of a pool ------------------------------------------------------------


def exact_total(weights: list[Fraction], limit: int) -> int | None:
    """The fewest entries that hold these weights exactly (1/3 -> 3), or None past ``limit``."""
    total = sum(weights)
    shares = [weight / total for weight in weights]
    entries = 1
    for share in shares:
        entries = math.lcm(entries, share.denominator)
        if entries > limit:
            return None
    return entries


def counts_for(weights: list[Fraction], entries: int) -> list[int]:
    """``entries`` split by weight, largest remainders first: exact when `exact_total` divides it."""
    total = sum(weights)
    ideal = [weight * entries / total for weight in weights]
    counts = [math.floor(share) for share in ideal]
    by_remainder = sorted(range(len(weights)), key=lambda i: (ideal[i] - counts[i], -i), reverse=True)
    for index in by_remainder[: entries - sum(counts)]:
        counts[index] += 1
    return counts


# -- little parsers ---------------------------------------------------------------------


def _items(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or not all(items):
        raise MessageSettingsError(f"{what}: expected a comma-separated list without empty items")
    return items


def _pair(item: str, what: str, form: str, share: bool = False) -> tuple[str, Fraction]:
    name, colon, weight_text = item.rpartition(":")
    if not colon or not name:
        raise MessageSettingsError(f"{what}: {item!r} is not {form}")
    percent = share and weight_text.endswith("%")
    number = weight_text[:-1] if percent else weight_text
    if not _NUMBER.match(number):
        raise MessageSettingsError(f"{what}: {item!r}: the weight must be a number" + (" or a percentage" if share else ""))
    weight = Fraction(number) / (100 if percent else 1)
    if weight <= 0 and not share:
        raise MessageSettingsError(f"{what}: {item!r}: the weight must be above 0")
    return name.strip(), weight


def _bytes(text: str, what: str) -> int:
    match = _SIZE.match(text.strip())
    unit = match and _UNITS.get(match.group(2).lower())
    if not unit:
        raise MessageSettingsError(f"{what}: {text!r} is not a size (bytes, or with k/KiB or m/MiB)")
    size = Fraction(match.group(1)) * unit
    if size.denominator != 1 or size > MAX_SIZE:
        raise MessageSettingsError(f"{what}: {text!r} must be a whole number of bytes, at most {MAX_SIZE}")
    return int(size)


def _number(text: str, what: str, name: str) -> float:
    if not _NUMBER.match(text.strip()):
        raise MessageSettingsError(f"{what}: the {name} {text!r} is not a number")
    return float(text)


def _weight_text(weight: Fraction) -> str:
    return str(weight.numerator) if weight.denominator == 1 else f"{float(weight):g}"
