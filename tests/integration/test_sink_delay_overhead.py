"""Timing faults add what they say and nothing more: real clients against ``loadkit sink``.

Each fault (``--delay``, ``-w``, ``--drip``, ``--greylist``) is measured with
two real clients, one session reusing its connection:

- Postfix's ``smtp-source -d -s 1 -m N``: its wall time for N messages,
  minus the same run against the sink without the fault, is N times the
  injected delay, plus little;
- ``loadkit source -d -s 1 -m N``, with the sink offering PIPELINING (the
  envelope and DATA in one round trip, so a delayed reply is written apart
  from the replies before it) and without it: its printed p50 is the
  injected delay plus about the round trips of a run without the fault.

Margins come from the run without the fault (its p99, its time per message)
plus TIMER_SLACK for a sleep that wakes late on a busy machine. A reply held
by Nagle's algorithm until the client's delayed ACK shows as some 40 ms.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time

import pytest

from loadkit.sink._protocol import S250_SENDER_OK
from loadkit.sink._server import DRIP_TICK
from tests.conftest import find_peer
from tests.integration.test_sink_cli import sink_process

MESSAGES = 100
LENGTH = 500
DELAY = 0.005  # seconds
TIMER_SLACK = 0.001  # seconds a timer may fire late on a busy 2-core machine
DELAYED_ACK = 0.040  # Linux's delayed ACK: what a reply held by Nagle waits
LATENCY_LINE = re.compile(r"latency ms: p50 ([0-9.]+)\s+p95 [0-9.]+\s+p99 ([0-9.]+)")
DRIP_RATE = 1000  # bytes a second: MAIL's reply in two pieces, 10 ms apart


def drip_seconds(reply: bytes, rate: int) -> float:
    """What the sink's drip waits in all: a pause before every piece but the first."""
    piece = max(1, int(rate * DRIP_TICK))
    return (math.ceil(len(reply) / piece) - 1) * piece / rate


# sink options -> seconds injected into each message
FAULTS = {
    "delay-data": (["--delay", f"data:{DELAY * 1000:g}ms"], DELAY),
    "w": (["-w", str(DELAY)], DELAY),
    "delay-rcpt": (["--delay", f"rcpt:{DELAY * 1000:g}ms"], DELAY),
    "drip-mail": (["--drip", f"mail:{DRIP_RATE}"], drip_seconds(S250_SENDER_OK, DRIP_RATE)),
    "greylist": (["--greylist"], 0.0),  # the first message is refused at once, the others pass
}


def loadkit_source(sink_options: list[str]) -> tuple[float, float]:
    """(p50, p99) in seconds of ``loadkit source -d -s 1 -m MESSAGES`` against a sink with these options."""
    with sink_process(*sink_options, "127.0.0.1:0") as sink:
        result = subprocess.run(
            [sys.executable, "-m", "loadkit", "source", "-A", "-d", "-s", "1", "-m", str(MESSAGES),
             "-l", str(LENGTH), f"127.0.0.1:{sink.port}"],
            capture_output=True, text=True, timeout=120,
        )
        sink.terminate()
    assert f"loadkit source: {MESSAGES} messages" in result.stdout, result.stdout + result.stderr
    match = LATENCY_LINE.search(result.stdout)
    assert match, result.stdout
    return float(match.group(1)) / 1000, float(match.group(2)) / 1000


def smtp_source_seconds(smtp_source: str, sink_options: list[str], folder) -> tuple[float, dict]:
    """(wall seconds, the sink's stats) of ``smtp-source -A -d -s 1 -m MESSAGES`` against a sink with these options."""
    with sink_process(*sink_options, "127.0.0.1:0", stats_path=str(folder / "stats.json")) as sink:
        started = time.perf_counter()
        result = subprocess.run(
            [smtp_source, "-A", "-d", "-s", "1", "-m", str(MESSAGES), "-l", str(LENGTH), f"127.0.0.1:{sink.port}"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "TZ": "UTC"},
        )
        elapsed = time.perf_counter() - started
        stats = sink.terminate()
    assert result.returncode == 0, result.stderr
    return elapsed, stats


@pytest.fixture(scope="module")
def loadkit_baseline():
    """(p50, p99) without a fault, by PIPELINING offered or not."""
    return {pipelining: loadkit_source([] if pipelining else ["-p"]) for pipelining in (True, False)}


@pytest.fixture(scope="module")
def smtp_source_baseline(tmp_path_factory):
    smtp_source = find_peer("smtp-source")
    elapsed, stats = smtp_source_seconds(smtp_source, [], tmp_path_factory.mktemp("baseline"))
    assert stats["messages"] == MESSAGES
    return smtp_source, elapsed


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_loadkit_source_sees_the_injected_delay_and_little_more(loadkit_baseline, fault, pipelining):
    options, injected = FAULTS[fault]
    base_p50, base_p99 = loadkit_baseline[pipelining]
    p50, p99 = loadkit_source(options + ([] if pipelining else ["-p"]))
    shown = f"{fault}: p50 {p50 * 1000:.2f} ms p99 {p99 * 1000:.2f} ms, injected {injected * 1000:.2f} ms, " \
            f"without it p50 {base_p50 * 1000:.2f} ms p99 {base_p99 * 1000:.2f} ms"
    assert p50 >= injected, shown
    assert p50 <= injected + base_p99 + TIMER_SLACK, shown
    assert p99 <= injected + base_p99 + DELAYED_ACK / 2, shown  # a stall behind a delayed ACK is 40 ms


@pytest.mark.parametrize("fault", list(FAULTS))
def test_smtp_source_sees_the_injected_delay_and_little_more(smtp_source_baseline, fault, tmp_path):
    smtp_source, base_elapsed = smtp_source_baseline
    options, injected = FAULTS[fault]
    elapsed, stats = smtp_source_seconds(smtp_source, options, tmp_path)
    assert stats["messages"] == (MESSAGES - 1 if fault == "greylist" else MESSAGES)
    added = (elapsed - base_elapsed) / MESSAGES  # per message, the start-up cancelled out
    shown = f"{fault}: {elapsed:.3f} s for {MESSAGES} messages, {base_elapsed:.3f} s without it, " \
            f"{added * 1000:.2f} ms added per message for {injected * 1000:.2f} ms injected"
    assert added >= injected - base_elapsed / MESSAGES, shown
    assert added <= injected + base_elapsed / MESSAGES + TIMER_SLACK, shown
