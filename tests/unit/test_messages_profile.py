"""Mail profiles as text: the grammar of sizes, MIME shares, recipients and domains, and its complaints."""

from __future__ import annotations

from fractions import Fraction

import pytest

from loadkit import messages
from loadkit.errors import LoadkitError, UsageError
from loadkit.messages import (
    FixedSize,
    LognormalSize,
    MailProfile,
    MessageFactory,
    MessageSettingsError,
    SizeTable,
    Spread,
    parse_domains,
    parse_mime,
    parse_recipients,
    parse_size,
)


def test_sizes_parse_with_units():
    assert parse_size("5120") == FixedSize(5120)
    assert parse_size("fixed:5k") == FixedSize(5120)
    assert parse_size("fixed:1.5KiB") == FixedSize(1536)
    assert parse_size("fixed:2m") == FixedSize(2 * 1024 * 1024)
    assert parse_size("lognormal:20k:1.0") == LognormalSize(20480, 1.0)
    table = parse_size("mix:4k-16k:50,1k:20,1m:30")
    assert isinstance(table, SizeTable)
    assert [(b.low, b.high, b.weight) for b in table.buckets] == [
        (1024, 1025, 20), (4096, 16384, 50), (1048576, 1048577, 30)]  # ordered by size
    assert table.bucket_of(1024) == 0 and table.bucket_of(16383) == 1 and table.bucket_of(16384) is None


def test_the_realistic_table_is_documented_and_adds_up():
    table = parse_size("mix:realistic")
    assert str(table) == "mix:realistic"
    assert sum(bucket.weight for bucket in table.buckets) == 100
    assert table.buckets[0].low == 512 and table.buckets[-1].high == 8 * 1024 * 1024
    assert table.buckets[-1].high + 1000 < 10_240_000  # under Postfix's default message_size_limit
    assert "mix:realistic" in messages._profile.__doc__ and "4m-8m 0.2" in messages._profile.__doc__
    assert table.slots() == 500  # weights in fifths of a percent: 500 entries hold them exactly


def test_mime_shares_leave_the_rest_to_plain():
    mix = parse_mime("attachments:0.2,html:30%,utf8:0.1")
    assert dict(zip(mix.values, mix.weights)) == {
        "plain": Fraction(2, 5), "html": Fraction(3, 10), "attachments": Fraction(1, 5), "utf8": Fraction(1, 10)}
    assert parse_mime("html:1").values == ("html",)
    assert parse_mime("smtputf8:0.5,plain:0.5").weights == (Fraction(1, 2), Fraction(1, 2))


def test_recipients_and_domains():
    counts = parse_recipients("1:80,2:15,5:5")
    assert counts.values == (1, 2, 5) and counts.shares() == [0.8, 0.15, 0.05]
    assert len(counts.table()) == 20  # 16 + 3 + 1: the weights exactly
    assert parse_recipients("3").values == (3,)
    domains = parse_domains("Example.COM:60,example.net:25,*:15")
    assert domains.values == ("example.com", "example.net", Spread(100, "spread.test"))
    assert parse_domains("*20.relay.test:1").values == (Spread(20, "relay.test"),)
    assert Spread(20, "relay.test").domains()[:2] == ("d00.relay.test", "d01.relay.test")
    assert parse_domains("mx.test").values == ("mx.test",)


def test_a_profile_reads_every_setting_and_prints_back():
    text = "size=mix:realistic mime=attachments:0.2,html:0.3 recipients=1:80,2:15,5:5;domains=a.test:60,*500:40"
    profile = MailProfile.parse(text)
    assert profile == MailProfile.parse(str(profile))
    assert str(profile.size) == "mix:realistic" and profile.domains.values[1] == Spread(500, "spread.test")
    assert MailProfile.parse("") == MailProfile() == MailProfile.parse(None)
    assert str(MailProfile.parse("size=lognormal:20k:1.0")) == "size=lognormal:20480:1"


@pytest.mark.parametrize("text, complaint", [
    ("size=lots", "size 'lots'"),
    ("size=fixed:-1", "not a size"),
    ("size=fixed:1.5", "whole number of bytes"),
    ("size=fixed:65m", "at most"),
    ("size=lognormal:20k", "lognormal:MEDIAN:SPREAD"),
    ("size=lognormal:20k:0", "spread above 0"),
    ("size=lognormal:20k:x", "not a number"),
    ("size=mix:huge", "no size table 'huge'"),
    ("size=mix:1k:20,,2k:1", "empty items"),
    ("size=mix:2k-1k:5", "smaller size to a larger"),
    ("size=mix:1k-4k:5,2k:5", "overlap"),
    ("size=mix:1k:0", "above 0"),
    ("mime=pdf:0.2", "unknown kind 'pdf'"),
    ("mime=html:0.7,attachments:0.5", "more than 1"),
    ("mime=html:2", "a share is 0 to 1"),
    ("mime=html", "not KIND:SHARE"),
    ("mime=html:0.1,html:0.2", "given twice"),
    ("recipients=0:5", "from 1 to 1000"),
    ("recipients=1:80,1:20", "given twice"),
    ("recipients=1:x", "must be a number"),
    ("domains=bad_domain!:5", "not a domain name"),
    ("domains=*0:5", "COUNT 1 to"),
    ("domains=a.test:1,A.test:2", "given twice"),
    ("colour=blue", "NAME=VALUE"),
    ("size", "NAME=VALUE"),
    ("size=1k size=2k", "given twice"),
])
def test_bad_settings_say_what_is_wrong_in_one_line(text, complaint):
    with pytest.raises(MessageSettingsError, match=complaint) as caught:
        MailProfile.parse(text)
    assert isinstance(caught.value, UsageError) and isinstance(caught.value, LoadkitError)
    assert isinstance(caught.value, ValueError)  # the factory's callers already catch ValueError
    assert "\n" not in str(caught.value)


def test_the_factory_takes_a_profile_as_text_and_complains_the_same_way():
    with pytest.raises(MessageSettingsError, match="unknown kind"):
        MessageFactory(profile="mime=movies:0.5")


def test_a_pool_too_large_for_memory_is_refused_before_it_is_made():
    with pytest.raises(MessageSettingsError, match="would hold .* MiB") as caught:
        MessageFactory(profile="size=mix:60m:1", pool_size=20)
    assert "\n" not in str(caught.value)


def test_raised_errors_are_exported():
    assert "MessageSettingsError" in messages.__all__
    for name in messages.__all__:
        assert hasattr(messages, name), name
