"""What the client times: each phase a round trip, RSET its own, the pipelined envelope one; every phase listed.

Against the scripted server of tests/unit/fake_smtp.py (with TLS and AUTH
for the session phases). A slow reply shows which phase holds its time.
"""

from __future__ import annotations

import time

import pytest

from loadkit.phases import PHASES
from loadkit.smtp import SMTPReplyError
from tests.unit import fake_smtp
from tests.unit.fake_smtp import ehlo_offering
from tests.unit.test_smtp_client import MESSAGE, REJECT_USER, SENDER, for_bad_recipients, on

serve, client_for = fake_smtp.serve, fake_smtp.client_for  # fixtures: a server per test, clients closed after it

SLOW = 0.1  # seconds a scripted reply waits
SLOW_MS = SLOW * 1000 * 0.9  # what the client must have measured, at least


def slow(verb: bytes):
    """A script that holds its reply to `verb` lines for SLOW seconds."""
    def respond(line, session):
        if line.split(b" ", 1)[0].upper() == verb:
            time.sleep(SLOW)
        return None
    return respond


def refuse_bad_and_slow_rset(line, session):
    if line.startswith(b"RCPT") and b"bad" in line:
        return REJECT_USER
    if line == b"RSET":
        time.sleep(SLOW)
    return None


@pytest.mark.parametrize("pipelining, envelope_phases", [
    (True, {"envelope"}), (False, {"mail", "rcpt", "data"}),
], ids=["pipelined", "one-by-one"])
def test_rset_is_its_own_round_trip_and_its_own_phase(serve, client_for, pipelining, envelope_phases):
    server = serve(refuse_bad_and_slow_rset, reply_delay=0.01)
    client = client_for(server, pipelining=pipelining)
    with pytest.raises(SMTPReplyError):
        client.send(SENDER, ["bad@example.com"], MESSAGE)
    timings = {}
    assert client.send(SENDER, ["a@example.com"], MESSAGE, timings).ok

    assert set(timings) == {"rset"} | envelope_phases | {"end-of-data"}
    assert timings["rset"] >= SLOW_MS
    assert all(timings[phase] < SLOW_MS for phase in envelope_phases), timings  # not counted in mail
    session = server.sessions[0]
    assert (b"RSET\r\n", b"250 2.0.0 Ok\r\n") in session.exchanges()  # sent alone, answered before MAIL goes out
    assert session.verbs().count(b"RSET") == 1


def test_no_rset_phase_when_none_was_sent(serve, client_for):
    server = serve()
    client = client_for(server)
    client.send(SENDER, ["a@example.com"], MESSAGE)
    timings = {}
    client.send(SENDER, ["a@example.com"], MESSAGE, timings)
    assert set(timings) == {"envelope", "end-of-data"}


def test_a_pipelined_envelope_is_one_phase_holding_its_round_trip(serve, client_for):
    server = serve(slow(b"DATA"))  # the last reply of the group is the slow one
    timings = {}
    client_for(server).send(SENDER, ["a@example.com", "b@example.com"], MESSAGE, timings)

    assert {"mail", "rcpt", "data"}.isdisjoint(timings)
    assert timings["envelope"] >= SLOW_MS
    assert timings["end-of-data"] < SLOW_MS


@pytest.mark.parametrize("slow_verb, phase", [(b"MAIL", "mail"), (b"RCPT", "rcpt"), (b"DATA", "data")])
def test_without_pipelining_mail_rcpt_and_data_are_timed_apart(serve, client_for, slow_verb, phase):
    server = serve(slow(slow_verb))
    timings = {}
    client_for(server, pipelining=False).send(SENDER, ["a@example.com"], MESSAGE, timings)

    assert "envelope" not in timings
    assert timings[phase] >= SLOW_MS
    assert max(timings, key=timings.get) == phase, timings


def test_phases_add_up_to_the_transaction(serve, client_for):
    server = serve(reply_delay=0.005)
    timings = {}
    start = time.perf_counter()
    client_for(server).send(SENDER, ["a@example.com"], MESSAGE, timings, quit=True)
    elapsed_ms = (time.perf_counter() - start) * 1000

    assert list(timings) == ["connect", "banner", "helo", "envelope", "end-of-data", "quit"]
    assert 0.9 * elapsed_ms <= sum(timings.values()) <= elapsed_ms


def sessions_that_emit_every_phase(serve, client_for):
    """Timings of sessions that together pass through every step the client has."""
    auth = ehlo_offering("AUTH PLAIN LOGIN")
    implicit = serve(tls="implicit", ehlo=auth)
    starttls = serve(tls="starttls", ehlo=ehlo_offering("STARTTLS", "AUTH PLAIN"))
    one_by_one = serve(on(b"RCPT", REJECT_USER, for_bad_recipients), ehlo=ehlo_offering(pipelining=False))
    runs = []

    def run(client, *sends):
        for recipients, quit in sends:
            timings = {}
            try:
                client.send(SENDER, recipients, MESSAGE, timings, quit=quit)
            except SMTPReplyError:
                pass
            runs.append(timings)

    run(client_for(implicit, tls_verify=False, username="u", password="p"), (["a@example.com"], True))
    run(client_for(starttls, starttls=True, tls_verify=False, username="u", password="p"), (["a@example.com"], True))
    run(client_for(one_by_one), (["bad@example.com"], False), (["a@example.com"], True))
    assert implicit.ended_session().tls and starttls.ended_session().tls
    return runs


def test_the_phase_order_lists_every_phase_the_client_emits_and_nothing_else(serve, client_for):
    runs = sessions_that_emit_every_phase(serve, client_for)

    emitted = set().union(*runs)
    assert emitted == set(PHASES)
    implicit_tls, starttls = runs[0], runs[1]
    assert list(implicit_tls) == ["connect", "tls", "banner", "helo", "auth", "envelope", "end-of-data", "quit"]
    assert list(starttls) == ["connect", "banner", "helo", "starttls", "tls", "auth", "envelope", "end-of-data", "quit"]
