"""MessageFactory and parse_trace: exact sizes, valid RFC 5322, unique ids, traces that round-trip.

The messages are checked with Python's own `email` parser, a reader we did
not write, so "valid" means what a real mail program thinks.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from email import policy
from email.parser import BytesParser

import pytest

from loadkit.messages import MAX_SEQUENCE, MessageFactory, Trace, parse_trace
from loadkit.messages._factory import ready_for_data
from loadkit.messages._text import body as _body

STAMPED = (b"Date:", b"Message-ID:", b"X-Loadkit-Trace:")


@pytest.fixture(scope="module")
def factory():
    return MessageFactory(payload_size=5120, pool_size=8, run_id="r1", source_tag="tester-1")


def split(message: bytes) -> tuple[bytes, bytes]:
    head, separator, body = message.partition(b"\r\n\r\n")
    assert separator, "no blank line after the headers"
    return head, body


def without_stamps(message: bytes) -> bytes:
    """The message minus the per-message headers: what the pool holds."""
    return b"".join(line for line in message.splitlines(keepends=True) if not line.startswith(STAMPED))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 75, 76, 77, 78, 79, 5120, 100000])
def test_body_is_exactly_payload_size(size):
    factory = MessageFactory(payload_size=size, pool_size=3, seed=size)
    for _ in range(3):  # every pool message
        message = factory.build()
        assert len(split(message)[1]) == size
        assert len(message) == factory.message_size


def test_body_filler_is_exact_and_well_formed_for_every_small_size():
    lines = ["Alpha beta gamma.", "", "x" * 76, "Delta epsilon zeta eta theta.", "y", "z w"]
    for size in range(600):
        body = _body(lines, size)
        assert len(body) == size
        assert len(_body([""], size)) == size  # blank text alone must not hang the filler
        if size >= 2:
            assert body.endswith(b"\r\n")
            for line in body[:-2].split(b"\r\n"):
                assert len(line) <= 76 and not line.endswith(b" ") and not line.startswith(b".")
    assert _body(lines, 1) == b"A"


@pytest.mark.parametrize("size", [0, 1, 77, 5120])
def test_headers_parse_without_defects(size):
    factory = MessageFactory(payload_size=size, pool_size=2, run_id="run-7", source_tag="host.a-99",
                             sender="from@example.test", recipient="rcpt@example.test", hostname="mx.example.test")
    before = time.time()
    raw = factory.build(sequence=41)
    for parse_policy in (policy.SMTP, policy.default):
        message = BytesParser(policy=parse_policy).parsebytes(raw)
        assert message.defects == []
        for name, value in message.items():
            assert value.defects == (), (name, value.defects)
        assert message["From"].addresses[0].addr_spec == "from@example.test"
        assert message["From"].addresses[0].display_name
        assert message["To"].addresses[0].addr_spec == "rcpt@example.test"
        assert message["Message-ID"] == "<run-7.host.a-99.0000000041@mx.example.test>"
        assert message["Content-Type"].content_type == "text/plain"
        assert message["Content-Type"].params["charset"] == "us-ascii"
        assert message["MIME-Version"] == "1.0"
        assert abs(message["Date"].datetime.timestamp() - before) < 2
        assert message.get_payload() == split(raw)[1].decode("ascii")


def test_lines_are_crlf_terminated_ascii_and_short():
    factory = MessageFactory(payload_size=100000, pool_size=4, seed=3)
    for _ in range(4):
        message = factory.build()
        assert message.isascii()
        assert message.endswith(b"\r\n")
        lines = message[:-2].split(b"\r\n")
        for line in lines:
            assert b"\r" not in line and b"\n" not in line  # no bare CR or LF
            assert len(line) <= 998
            assert not line.startswith(b".")  # nothing for the client to stuff
        assert all(len(line) <= 76 for line in split(message)[1].split(b"\r\n"))


def test_message_ids_and_traces_are_unique(factory):
    ids, sequences = set(), set()
    for _ in range(10000):
        message = factory.build()
        at = message.index(b"Message-ID: ")
        ids.add(message[at: message.index(b"\r\n", at)])
        sequences.add(parse_trace(message).sequence)
    assert len(ids) == 10000
    assert len(sequences) == 10000


def id_of(message: bytes) -> str:
    return email.message_from_bytes(message)["Message-ID"]


def test_processes_of_one_run_never_share_a_message_id():
    one = MessageFactory(payload_size=10, pool_size=1, run_id="shared", source_tag="worker-1")
    two = MessageFactory(payload_size=10, pool_size=1, run_id="shared", source_tag="worker-2")
    assert id_of(one.build(5)) != id_of(two.build(5))


def test_factories_of_one_process_share_the_sequence():
    """Each Locust user may make its own factory: their messages must still be told apart."""
    one = MessageFactory(payload_size=10, pool_size=1, run_id="per-user", source_tag="worker-1")
    two = MessageFactory(payload_size=10, pool_size=1, run_id="per-user", source_tag="worker-1")
    messages = [one.build(), two.build(), one.build(), two.build()]
    assert [parse_trace(message).sequence for message in messages] == [0, 1, 2, 3]
    assert len({id_of(message) for message in messages}) == 4


def test_same_seed_same_pool_and_different_seeds_differ():
    same = dict(payload_size=300, pool_size=4, run_id="r", source_tag="s")
    first, second = MessageFactory(seed=11, **same), MessageFactory(seed=11, **same)
    other, unseeded, unseeded_too = MessageFactory(seed=12, **same), MessageFactory(**same), MessageFactory(**same)
    pool = lambda f: [without_stamps(f.build(n)) for n in range(4)]  # noqa: E731
    assert pool(first) == pool(second)
    assert pool(first) != pool(other)
    assert pool(unseeded) != pool(unseeded_too)
    assert len(set(pool(unseeded))) == 4  # the pool holds different messages


def test_run_id_defaults_to_random_hex_even_when_seeded():
    one, two = MessageFactory(payload_size=0, pool_size=1, seed=1), MessageFactory(payload_size=0, pool_size=1, seed=1)
    assert re.fullmatch(r"[0-9a-f]{8}", one.run_id)
    assert one.run_id != two.run_id


def test_default_source_tag_is_sanitized_host_and_pid():
    factory = MessageFactory(payload_size=0, pool_size=1)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", factory.source_tag)
    assert factory.source_tag.endswith(f"-{os.getpid()}")


def test_trace_round_trips(factory):
    before = time.time()
    message = factory.build()
    after = time.time()
    trace = parse_trace(message)
    assert isinstance(trace, Trace)
    assert (trace.run_id, trace.source) == ("r1", "tester-1")
    assert before - 1e-6 <= trace.sent_at <= after + 1e-6
    next_trace = parse_trace(factory.build())
    assert next_trace.sequence == trace.sequence + 1

    head, _ = split(message)
    value = BytesParser(policy=policy.SMTP).parsebytes(message)["X-Loadkit-Trace"]
    assert parse_trace(head) == trace  # the header block alone
    assert parse_trace(str(value)) == trace  # the value, as the email package gives it
    assert parse_trace(value.encode()) == trace
    relayed = b"Received: from mx by sink; Thu, 1 Jan 2026 00:00:00 +0000\r\n" + message
    assert parse_trace(relayed) == trace
    assert parse_trace(message.replace(b"X-Loadkit-Trace:", b"x-loadkit-trace:")) == trace


def test_explicit_sequence_is_stamped_and_bounded(factory):
    assert parse_trace(factory.build(sequence=123456)).sequence == 123456
    assert len(factory.build(sequence=MAX_SEQUENCE)) == factory.message_size
    for bad in (-1, MAX_SEQUENCE + 1):
        with pytest.raises(ValueError, match="sequence"):
            factory.build(sequence=bad)


@pytest.mark.parametrize("data", [
    b"", "", None, 42, "r\u00e9sum\u00e9",
    b"garbage",
    b"Subject: hi\r\n\r\nbody\r\n",  # no trace at all
    b"Subject: hi\r\n\r\nX-Loadkit-Trace: run=a; src=b; seq=1; t=2.5\r\n",  # only in the body
    b"Subject: hi\r\nX-Old-X-Loadkit-Trace: run=a; src=b; seq=1; t=2.5\r\n\r\n",  # not the header's name
    b"X-Loadkit-Trace: run=a; src=b; seq=x; t=2.5\r\n\r\n",
    b"X-Loadkit-Trace: run=a; src=b; seq=1\r\n\r\n",
    b"X-Loadkit-Trace: run=a; src=b; seq=1; t=2.5; extra\r\n\r\n",
    b"X-Loadkit-Trace: run=; src=b; seq=1; t=2.5\r\n\r\n",
    b"run=a; src=b c; seq=1; t=2.5",
])
def test_parse_trace_gives_none_for_anything_malformed(data):
    assert parse_trace(data) is None


def test_parse_trace_reads_a_well_formed_value():
    assert parse_trace(b"run=a; src=b.c-d; seq=0007; t=1700000000.5") == Trace("a", "b.c-d", 7, 1700000000.5)
    assert parse_trace(b"X-Loadkit-Trace:run=a;src=b;seq=1;t=2\r\n\r\n") == Trace("a", "b", 1, 2.0)


def test_message_size_is_constant(factory):
    sizes = {len(factory.build()) for _ in range(50)}
    assert sizes == {factory.message_size}
    with_subject = MessageFactory(payload_size=64, pool_size=16, subject="Load test: smtp-source -S")
    assert {len(with_subject.build()) for _ in range(32)} == {with_subject.message_size}
    assert b"\r\nSubject: Load test: smtp-source -S\r\n" in with_subject.build()


@pytest.mark.parametrize("kwargs, complaint", [
    (dict(payload_size=-1), "payload size"),
    (dict(payload_size=1.5), "payload size"),
    (dict(pool_size=0), "pool size"),
    (dict(run_id="has space"), "run id"),
    (dict(source_tag="a..b"), "source tag"),
    (dict(hostname="bad_host!"), "hostname"),
    (dict(sender="<x@y>"), "sender"),
    (dict(recipient=""), "recipient"),
    (dict(subject="two\r\nlines"), "subject"),
    (dict(subject="x" * 990), "subject"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, complaint):
    with pytest.raises(ValueError, match=complaint) as caught:
        MessageFactory(**kwargs)
    assert "\n" not in str(caught.value)


def test_build_cost_is_measured(factory):
    """Prints the cost of one build() of a 5 KiB message; asserts only that every message is whole."""
    count = 20000
    sizes = set()
    started = time.perf_counter()
    for _ in range(count):  # each message dropped after use, as in a send loop
        sizes.add(len(factory.build()))
    elapsed = time.perf_counter() - started
    assert sizes == {factory.message_size}
    message = factory.build()
    started = time.perf_counter()
    traces = {parse_trace(message) for _ in range(count)}
    parse_elapsed = time.perf_counter() - started
    assert traces == {parse_trace(message)} and None not in traces
    print(f"\nbuild(): {elapsed / count * 1e6:.2f} us per {factory.message_size}-byte message;"
          f" parse_trace(): {parse_elapsed / count * 1e6:.2f} us")


def test_built_messages_are_ready_for_data_and_say_so():
    factory = MessageFactory(payload_size=5120, pool_size=4, seed=7)
    message = factory.build()

    assert factory.ready_for_data
    assert b"\n." not in message and not message.startswith(b".") and message.endswith(b"\r\n")


@pytest.mark.parametrize("message, ready", [
    (b"Subject: a\r\n\r\nbody\r\n", True),
    (b"Subject: a\r\n\r\n.dot line\r\n", False),
    (b".starts with a dot\r\n", False),
    (b"Subject: a\r\n\r\nno final line break", False),
])
def test_ready_for_data(message, ready):
    assert ready_for_data(message) is ready
