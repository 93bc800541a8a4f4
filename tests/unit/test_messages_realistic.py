"""Mail that looks like real mail: the sizes, kinds, recipients and domains sent follow the profile.

Goodness of fit is checked on 10,000 messages (or recipient draws) with
seeded factories, against the asked distribution: chi-square on buckets,
Kolmogorov-Smirnov for the lognormal. Each check is also run against a
wrong distribution, which it must reject, so it can fail. MIME messages
are read back with Python's `email` package (policy default), a parser we
did not write.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import Counter
from email import policy
from email.parser import BytesParser, Parser

import pytest

from loadkit.messages import (
    MailProfile,
    MessageFactory,
    needs_8bitmime,
    needs_smtputf8,
    parse_size,
    parse_trace,
)
from loadkit.messages._mime import ATTACHMENT_TYPES

MESSAGES = 10_000
FIT = 0.001  # a p-value below this rejects the fit


def chi_square_p(observed: list[int], shares: list[float]) -> float:
    """The chi-square test's p-value of counts against expected shares (df = buckets - 1)."""
    total = sum(observed)
    statistic = sum((seen - total * share) ** 2 / (total * share) for seen, share in zip(observed, shares))
    return _upper_regularized_gamma((len(observed) - 1) / 2, statistic / 2)


def _upper_regularized_gamma(a: float, x: float) -> float:
    if x <= 0:
        return 1.0
    term = total = 1.0 / a  # the series of the lower function P(a, x)
    n = 0
    while term > total * 1e-16:
        n += 1
        term *= x / (a + n)
        total += term
    return max(0.0, 1.0 - math.exp(-x + a * math.log(x) - math.lgamma(a)) * total)


def ks_p(sizes: list[int], cdf) -> float:
    """The Kolmogorov-Smirnov test's p-value of a sample against a continuous distribution."""
    ordered = sorted(sizes)
    n = len(ordered)
    distance = max(max((i + 1) / n - cdf(x), cdf(x) - i / n) for i, x in enumerate(ordered))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * distance
    return min(1.0, max(0.0, 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))))


def body_of(message: bytes) -> bytes:
    return message.partition(b"\r\n\r\n")[2]


def sent_body_sizes(factory: MessageFactory, count: int = MESSAGES) -> list[int]:
    """The body sizes of ``count`` messages as the send loop builds them."""
    return [len(body_of(factory.build())) for _ in range(count)]


@pytest.fixture(scope="module")
def realistic():
    return MessageFactory(seed=13, run_id="fit", source_tag="realistic",
                          profile="size=mix:realistic mime=attachments:0.2,html:0.3,utf8:0.1,smtputf8:0.05")


def test_sizes_sent_follow_the_realistic_table(realistic):
    table = parse_size("mix:realistic")
    sizes = sent_body_sizes(realistic)
    buckets = Counter(table.bucket_of(size) for size in sizes)
    assert None not in buckets
    observed = [buckets[index] for index in range(len(table.buckets))]
    assert min(observed) > 0
    assert chi_square_p(observed, table.shares()) > FIT
    wrong = parse_size("mix:512-1k:15,1k-2k:15,2k-4k:15,4k-8k:15,8k-16k:10,16k-32k:9,32k-64k:6,64k-128k:4,"
                       "128k-512k:5,512k-1m:3,1m-4m:2,4m-8m:1")
    assert chi_square_p(observed, wrong.shares()) < FIT


def test_sizes_sent_follow_a_lognormal():
    factory = MessageFactory(seed=5, run_id="fit", source_tag="lognormal", profile="size=lognormal:20k:1.0")
    sizes = sent_body_sizes(factory)
    assert ks_p(sizes, parse_size("lognormal:20k:1.0").cdf) > FIT
    assert ks_p(sizes, parse_size("lognormal:20k:1.3").cdf) < FIT
    assert ks_p(sizes, parse_size("lognormal:24k:1.0").cdf) < FIT
    median = sorted(sizes)[len(sizes) // 2]
    assert 0.95 * 20480 < median < 1.05 * 20480


def test_a_table_with_single_sizes_and_ranges():
    text = "mix:300:10,2k-3k:60,40000-50000:30"
    factory = MessageFactory(seed=3, run_id="fit", source_tag="table", profile=f"size={text}")
    table = parse_size(text)
    sizes = sent_body_sizes(factory)
    buckets = Counter(table.bucket_of(size) for size in sizes)
    assert None not in buckets and buckets[0] == sizes.count(300)
    assert chi_square_p([buckets[i] for i in range(3)], table.shares()) > FIT
    assert len(factory.message_sizes) == 40  # 10 entries hold 10/60/30 exactly; the 32 asked round up to 40


def test_mime_kinds_sent_hold_their_shares_exactly(realistic):
    kinds = Counter(realistic.kinds)
    assert len(realistic.kinds) == 500
    assert kinds == {"plain": 175, "html": 150, "attachments": 100, "utf8": 50, "smtputf8": 25}
    sent = Counter(realistic.kinds[n % 500] for n in range(MESSAGES))
    shares = {"plain": 0.35, "html": 0.3, "attachments": 0.2, "utf8": 0.1, "smtputf8": 0.05}
    assert chi_square_p([sent[kind] for kind in shares], list(shares.values())) > FIT


def parsed(message: bytes):
    """The message as the `email` package reads it, with no defect anywhere."""
    message_object = BytesParser(policy=policy.default).parsebytes(message)
    assert message_object.defects == []
    for part in message_object.walk():
        assert part.defects == [], part.get_content_type()
        if part is not message_object or not needs_smtputf8(message):
            for name, value in part.items():
                assert value.defects == (), (name, value.defects)
    for name, value in headers_of(message).items():
        assert value.defects == (), (name, value.defects)
    return message_object


def headers_of(message: bytes):
    """The header block as the `email` package reads it.

    UTF-8 headers (RFC 6532) are read as UTF-8 text: the bytes parser takes
    raw UTF-8 in an address header for undecodable bytes (it handles RFC
    6532 only in unstructured headers such as Subject).
    """
    if needs_smtputf8(message):
        head = message.partition(b"\r\n\r\n")[0].decode("utf-8")
        return Parser(policy=policy.default).parsestr(head + "\r\n\r\n", headersonly=True)
    return BytesParser(policy=policy.default).parsebytes(message, headersonly=True)


def test_every_kind_parses_with_its_declared_parts(realistic):
    magic = {content_type: start for content_type, _, _, start in ATTACHMENT_TYPES}
    attachments_seen = Counter()
    for n, kind in enumerate(realistic.kinds):
        raw = realistic.build(n)
        assert len(body_of(raw)) == realistic.payload_sizes[n] and len(raw) == realistic.size_of(n)
        assert parse_trace(raw).sequence == n
        for line in raw[:-2].split(b"\r\n"):
            assert len(line) <= 998 and b"\r" not in line and b"\n" not in line and not line.startswith(b".")
        message = parsed(raw)
        assert message["MIME-Version"] == "1.0"
        assert needs_8bitmime(raw) == (kind in ("utf8", "smtputf8"))
        assert needs_smtputf8(raw) == (kind == "smtputf8")
        if kind == "plain":
            assert message.get_content_type() == "text/plain" and raw.isascii()
        elif kind == "html":
            assert message.get_content_type() == "multipart/alternative"
            assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
            html = list(message.iter_parts())[1].get_content()
            assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
        elif kind == "attachments":
            assert message.get_content_type() == "multipart/mixed"
            parts = list(message.iter_parts())
            assert parts[0].get_content_type() == "text/plain"
            attached = list(message.iter_attachments())
            assert 1 <= len(attached) <= 3 and len(attached) == len(parts) - 1
            for part in attached:
                data = part.get_content()
                assert isinstance(data, bytes)
                assert len(data) == int(part.get_param("size", header="content-disposition")) >= 3
                assert data.startswith(magic[part.get_content_type()][: len(data)])
                assert part.get_filename().endswith((".pdf", ".png", ".jpg", ".zip", ".docx", ".bin"))
                attachments_seen[part.get_content_type()] += 1
        else:  # utf8, smtputf8
            assert message.get_content_type() == "text/plain"
            assert message.get_content_charset() == "utf-8" and message["Content-Transfer-Encoding"] == "8bit"
            text = body_of(raw).decode("utf-8")  # whole characters, even where a line was cut
            assert message.get_content() == text and not text.isascii()
            subject_line = re.search(rb"\r\nSubject: (.*?)\r\n(?! )", raw, re.DOTALL).group(1)
            assert subject_line.isascii() == (kind == "utf8")  # encoded words, or raw UTF-8 (RFC 6532)
            assert not str(message["Subject"]).isascii()  # round-trips to the non-ASCII text either way
            assert not headers_of(raw)["From"].addresses[0].display_name.isascii()
    assert len(attachments_seen) >= 4  # several content types, not one


def test_utf8_round_trips_through_the_email_package():
    factory = MessageFactory(seed=21, pool_size=40, run_id="utf", source_tag="rt", profile="mime=smtputf8:1")
    for n in range(len(factory.kinds)):
        raw = factory.build(n)
        message = parsed(raw)
        head = raw.partition(b"\r\n\r\n")[0].decode("utf-8")
        subject = re.search(r"\r\nSubject: ([^\r]*)\r\n", head).group(1)
        assert str(message["Subject"]) == subject
        assert message.get_content() == body_of(raw).decode("utf-8")
        assert len(body_of(raw)) == 5120
    assert factory.needs_smtputf8 and factory.needs_8bitmime
    assert factory.message_size is None  # UTF-8 headers differ in length


def test_small_sizes_keep_their_exact_size_and_fall_back_to_plain():
    factory = MessageFactory(seed=2, run_id="small", source_tag="fall", pool_size=40,
                             profile="size=mix:0:10,1:10,2:10,150:10,700:60 mime=attachments:0.5,html:0.5")
    for n, kind in enumerate(factory.kinds):
        raw = factory.build(n)
        assert len(body_of(raw)) == factory.payload_sizes[n]
        if factory.payload_sizes[n] < 150:
            assert kind == "plain"
        parsed(raw)
    assert "attachments" in factory.kinds and "html" in factory.kinds


def test_plain_default_factories_did_not_change():
    """A factory without a profile makes the pool it always made: same size, same kind, same count."""
    factory = MessageFactory(payload_size=5120, pool_size=8, seed=1, run_id="r", source_tag="s")
    assert factory.kinds == ("plain",) * 8 and factory.payload_sizes == (5120,) * 8
    assert set(factory.message_sizes) == {factory.message_size}
    assert factory.recipients() == ["user@loadkit.test"] and not factory.draws_recipients
    assert not factory.needs_8bitmime and not factory.needs_smtputf8


def test_recipients_per_message_follow_their_weights():
    factory = MessageFactory(payload_size=100, pool_size=1, seed=1, run_id="rcpt", source_tag="count",
                             recipient="user@example.com", profile="recipients=1:80,2:15,5:5")
    rng = random.Random(7)
    drawn = [factory.recipients(rng) for _ in range(MESSAGES)]
    counts = Counter(len(recipients) for recipients in drawn)
    assert set(counts) == {1, 2, 5}
    assert chi_square_p([counts[1], counts[2], counts[5]], [0.8, 0.15, 0.05]) > FIT
    assert chi_square_p([counts[1], counts[2], counts[5]], [0.75, 0.2, 0.05]) < FIT
    assert ["user@example.com"] in drawn and ["1user@example.com", "2user@example.com"] in drawn
    assert [f"{n}user@example.com" for n in range(1, 6)] in drawn


def test_recipient_domains_follow_their_weights_and_spread():
    factory = MessageFactory(payload_size=100, pool_size=1, seed=1, run_id="rcpt", source_tag="domains",
                             profile="recipients=1:50,3:50 domains=example.com:60,example.net:25,*:15")
    rng = random.Random(11)
    domains = [address.split("@")[1] for _ in range(MESSAGES // 2) for address in factory.recipients(rng)]
    assert 9_000 < len(domains) < 11_000  # 1 or 3 recipients, half and half
    named = Counter(domain if domain in ("example.com", "example.net") else "*" for domain in domains)
    assert chi_square_p([named["example.com"], named["example.net"], named["*"]], [0.6, 0.25, 0.15]) > FIT
    assert chi_square_p([named["example.com"], named["example.net"], named["*"]], [0.58, 0.27, 0.15]) < FIT
    spread = Counter(domain for domain in domains if domain not in ("example.com", "example.net"))
    assert len(spread) == 100 and all(re.fullmatch(r"d[0-9]{2}\.spread\.test", domain) for domain in spread)
    observed = [spread[domain] for domain in sorted(spread)]
    assert chi_square_p(observed, [0.01] * 100) > FIT  # evenly spread


def test_the_same_seed_sends_the_same_mail():
    profile = "size=lognormal:8k:1.0 mime=attachments:0.3,html:0.3,utf8:0.2 recipients=1:2,2:1 domains=a.test:1,*:1"
    one, two, other = (MessageFactory(seed=seed, run_id="same", source_tag=f"s{n}", profile=profile)
                       for n, seed in enumerate((9, 9, 10)))
    def unstamped(factory):
        return [factory.build(n).split(b"\r\n", 3)[3] for n in range(len(factory.kinds))]
    assert unstamped(one) == unstamped(two) and one.kinds == two.kinds and one.payload_sizes == two.payload_sizes
    assert unstamped(one) != unstamped(other)
    assert [one.recipients() for _ in range(50)] == [two.recipients() for _ in range(50)]
    assert [one.recipients() for _ in range(50)] != [other.recipients() for _ in range(50)]
    assert MailProfile.parse(profile) == one.profile


def test_build_and_recipients_cost_is_measured(realistic):
    """Prints build() per message for the default and the realistic factory, and recipients() per draw."""
    default = MessageFactory(payload_size=5120, pool_size=32, seed=1, run_id="cost", source_tag="default")
    drawing = MessageFactory(payload_size=100, pool_size=1, seed=1, run_id="cost", source_tag="draw",
                             profile="recipients=1:80,2:15,5:5 domains=example.com:60,example.net:25,*:15")
    count = 20_000
    results = {}
    for name, call in (("default 5 KiB build()", default.build), ("realistic build()", realistic.build),
                       ("recipients()", drawing.recipients)):
        made = set()
        started = time.perf_counter()
        for _ in range(count):
            made.add(len(call()))
        results[name] = (time.perf_counter() - started) / count * 1e6
        assert made  # every call gave something
    assert len({len(default.build()) for _ in range(100)}) == 1
    print("\n" + "; ".join(f"{name}: {micros:.2f} us" for name, micros in results.items()))


def test_every_kind_verifies_when_signed_with_dkim():
    """The DKIM pipeline's input: loadkit's signature over each kind verifies with dkimpy, a verifier we did not write."""
    dkim = pytest.importorskip("dkim")
    from loadkit.dkim import DkimSigner

    signer = DkimSigner.generate("loadkit", "loadkit.test", bits=1024)  # small key: a fast test

    def lookup(name, timeout=5):
        return signer.dns_txt_record() if name == b"loadkit._domainkey.loadkit.test." else None

    factory = MessageFactory(seed=3, dkim=signer, pool_size=40, run_id="dkim", source_tag="kinds",
                             profile="size=fixed:3k mime=attachments:0.2,html:0.2,utf8:0.2,smtputf8:0.2")
    assert Counter(factory.kinds) == dict.fromkeys(("plain", "html", "attachments", "utf8", "smtputf8"), 8)
    for n in range(len(factory.kinds)):
        message = factory.build(n)
        assert dkim.verify(message, dnsfunc=lookup), factory.kinds[n]
        assert len(body_of(message)) == 3 * 1024
