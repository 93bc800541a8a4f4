"""Postfix's smtp-source against ``loadkit sink``'s fault modes: every count exact.

smtp-source gives up at the first unexpected reply unless told ``-A``;
with it, a refused MAIL, RCPT, DATA or end of data abandons that message
and goes on with the next. Without ``-d`` each message has a connection of
its own, so every message is one attempt at each command, and
``messages + rejected == attempted`` holds exactly. A lost connection ends
smtp-source even with ``-A``.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.integration.test_sink_cli import sink_process

pytestmark = pytest.mark.peer("smtp-source")

MESSAGES, SESSIONS, LENGTH = 200, 5, 500


def run(smtp_source: str, tmp_path, sink_options: list[str], source_options: list[str] = (),
        messages: int = MESSAGES, expect_status: int = 0) -> tuple[dict, float]:
    """smtp-source -A against a fresh sink with SINK_OPTIONS; (the sink's stats, smtp-source's seconds)."""
    with sink_process(*sink_options, "127.0.0.1:0", stats_path=str(tmp_path / "stats.json")) as sink:
        started = time.monotonic()
        result = subprocess.run(
            [smtp_source, "-A", "-s", str(SESSIONS), "-m", str(messages), "-l", str(LENGTH), *source_options,
             f"127.0.0.1:{sink.port}"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "TZ": "UTC"},
        )
        elapsed = time.monotonic() - started
        assert result.returncode == expect_status, result.stderr
        return sink.terminate(), elapsed


@pytest.mark.parametrize(
    "option, command, code",
    [
        ("--reject=mail:451", "mail", "451"),
        ("--reject=rcpt:550", "rcpt", "550"),
        ("--reject=data:554", "data", "554"),
        ("--reject=data-end:552", ".", "552"),
        ("-frcpt", "rcpt", "500"),
        ("-rdata", "data", "450"),
    ],
)
def test_rejecting_every_command_leaves_no_message(peer, tmp_path, option, command, code):
    stats, _ = run(peer("smtp-source"), tmp_path, [option])
    assert stats["messages"] == 0 and stats["sessions"] == MESSAGES
    assert stats["faults"] == {"reject": {command: MESSAGES}}
    assert stats["replies"][code] == MESSAGES


@pytest.mark.parametrize("command, code", [("rcpt", "550"), ("mail", "421"), ("data-end", "554")])
def test_a_rate_with_a_seed_gives_the_same_exact_counts(peer, tmp_path, command, code):
    spec = f"--reject={command}:{code}:0.3"
    first, _ = run(peer("smtp-source"), tmp_path, [spec, "--seed", "11"])
    again, _ = run(peer("smtp-source"), tmp_path, [spec, "--seed", "11"])
    key = "." if command == "data-end" else command
    rejected = first["faults"]["reject"][key]
    assert 30 <= rejected <= 90  # 30% of 200, give or take
    assert first["messages"] + rejected == MESSAGES  # every attempt either delivered or refused
    assert first["replies"][code] == rejected
    assert (again["messages"], again["faults"]) == (first["messages"], first["faults"])


def test_lmtp_end_of_data_rejected_for_every_recipient(peer, tmp_path):
    stats, _ = run(peer("smtp-source"), tmp_path, ["-L", "--reject=data-end:452:0.5", "--seed", "3"],
                   ["-L", "-r", "2"])
    rejected = stats["faults"]["reject"]["."]
    assert stats["messages"] + rejected == MESSAGES and stats["recipients"] == 2 * stats["messages"]
    assert stats["replies"]["452"] == 2 * rejected  # one reply per recipient


def test_421_and_disconnect_after_mail(peer, tmp_path):
    stats, _ = run(peer("smtp-source"), tmp_path, ["-Q", "mail"])
    assert (stats["messages"], stats["sessions"]) == (0, MESSAGES)
    assert stats["faults"] == {"shutdown": {"mail": MESSAGES}}
    assert stats["replies"]["421"] == MESSAGES and "221" not in stats["replies"]  # no QUIT was answered


def test_silent_disconnect_after_rcpt_ends_smtp_source(peer, tmp_path):
    with sink_process("-q", "rcpt", "127.0.0.1:0", stats_path=str(tmp_path / "stats.json")) as sink:
        result = subprocess.run([peer("smtp-source"), "-A", "-m", "5", f"127.0.0.1:{sink.port}"],
                                capture_output=True, text=True, timeout=60)
        stats = sink.terminate()
    assert result.returncode == 1 and "lost connection" in result.stderr
    assert (stats["sessions"], stats["messages"]) == (1, 0)
    assert stats["faults"] == {"disconnect": {"rcpt": 1}}
    assert stats["replies"] == {"220": 1, "250": 2}  # banner, HELO, MAIL; nothing after RCPT


def test_a_fixed_delay_shows_in_the_run_time(peer, tmp_path):
    messages = 50
    stats, elapsed = run(peer("smtp-source"), tmp_path, ["--delay", "data:30ms"], messages=messages)
    assert stats["messages"] == messages and stats["faults"] == {"delay": {"data": messages}}
    rounds = messages // SESSIONS  # each session waits 30 ms per message, one message after another
    assert rounds * 0.030 <= elapsed < rounds * 0.030 + 5.0


def test_drawn_delays_and_a_drip_deliver_everything(peer, tmp_path):
    stats, _ = run(peer("smtp-source"), tmp_path,
                   ["--delay", "rcpt:lognormal:2ms:2", "--delay", "mail:uniform:0:2ms", "--drip", "helo:5000"],
                   messages=50)
    assert stats["messages"] == 50
    assert stats["faults"] == {"delay": {"mail": 50, "rcpt": 50}, "drip": {"helo": 50}}


def test_greylisting_refuses_the_first_attempt_only(peer, tmp_path):
    stats, _ = run(peer("smtp-source"), tmp_path, ["--greylist"], ["-s", "1"])
    # one sender, one recipient, one client address: only the very first RCPT is greylisted
    assert stats["messages"] == MESSAGES - 1
    assert stats["faults"] == {"greylist": {"rcpt": 1}} and stats["replies"]["450"] == 1


def test_faults_on_a_reused_connection(peer, tmp_path):
    stats, _ = run(peer("smtp-source"), tmp_path, ["--reject=rcpt:451:0.25", "--seed", "2"], ["-d"])
    rejected = stats["faults"]["reject"]["rcpt"]
    assert stats["sessions"] == SESSIONS and stats["messages"] + rejected == MESSAGES
