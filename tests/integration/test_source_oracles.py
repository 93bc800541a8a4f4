"""`loadkit source` and the Locust user checked through what the sink stored and counted.

The sink's stored files (`--store DIR`) and counters are the oracle: the body
length (-l), Subject (-S), EHLO name and default domain (-M), sender (-f) and
numbered recipients (-N) are read back from the messages as received; the
percentiles are checked against a server delay we set; implicit TLS and
submission with AUTH run end to end.
"""

from __future__ import annotations

import re
import subprocess
import sys
from itertools import takewhile
from pathlib import Path

from tests.integration.peers import loadkit_sink
from tests.integration.test_locust_headless import USERS, aggregated, run_locust

SUMMARY = re.compile(r"(\d+) messages \((\d+) delivered, (\d+) failed\).* in ([\d.]+) s")
LATENCY = re.compile(r"p50 ([\d.]+)\s+p95 ([\d.]+)\s+p99 ([\d.]+)\s+max ([\d.]+)")
HDR_PRECISION = 0.001  # three significant digits: a reported value is within 0.1% of a sample


def source(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadkit", "source", *args], capture_output=True, text=True, timeout=120
    )


def stored_messages(store: Path) -> list[tuple[list[bytes], bytes]]:
    """(envelope lines the sink added, the message as received) per stored file."""
    messages = []
    for path in sorted((store / "new").iterdir()):
        lines = path.read_bytes().split(b"\r\n")
        added = 1 + sum(1 for _ in takewhile(lambda line: line.startswith(b"Delivered-To: "), lines[1:]))
        assert lines[0].startswith(b"Return-Path: ")
        messages.append((lines[:added], b"\r\n".join(lines[added:])))
    return messages


def header(message: bytes, name: bytes) -> bytes:
    head = message.split(b"\r\n\r\n", 1)[0]
    return next(line.split(b": ", 1)[1] for line in head.split(b"\r\n") if line.startswith(name + b": "))


def test_body_length_and_headers_read_back_from_stored_messages(tmp_path):
    store = tmp_path / "store"
    with loadkit_sink(tmp_path, "--store", str(store)) as (url, read_stats):
        endpoint = url.removeprefix("smtp://")
        result = source("-s", "2", "-m", "12", "-d", "-l", "1000", "-S", "Quarterly figures", "-M", "client.example",
                        "-N", "-r", "2", endpoint)
        stats = read_stats()
    assert result.returncode == 0, result.stdout + result.stderr
    assert SUMMARY.search(result.stdout).groups()[:3] == ("12", "12", "0")
    messages = stored_messages(store)
    assert len(messages) == stats["messages"] == stats["store"]["stored"] == 12
    assert sum(len(message) for _, message in messages) == stats["bytes"]  # what the sink counted is what it kept
    recipients = []
    for envelope, message in messages:
        assert len(message.split(b"\r\n\r\n", 1)[1]) == 1000  # -l: the body, headers not included
        assert header(message, b"Subject") == b"Quarterly figures"
        assert envelope[0] == b"Return-Path: <foo@client.example>"  # -M names the default domain
        recipients += [line.removeprefix(b"Delivered-To: ") for line in envelope[1:]]
    assert len(recipients) == len(set(recipients)) == stats["recipients"] == 24  # -N: never repeats
    assert all(re.fullmatch(rb"\d+foo@client\.example", recipient) for recipient in recipients)
    assert stats["sessions"] == 2  # -d: one connection per session


def test_a_given_sender_and_recipient_are_the_envelope(tmp_path):
    store = tmp_path / "store"
    with loadkit_sink(tmp_path, "--store", str(store)) as (url, read_stats):
        result = source("-m", "3", "-f", "alice@sender.example", "-t", "bob@rcpt.example",
                        url.removeprefix("smtp://"))
        stats = read_stats()
    assert result.returncode == 0, result.stdout + result.stderr
    messages = stored_messages(store)
    assert len(messages) == stats["messages"] == 3
    assert stats["sessions"] == 3  # without -d, one connection per message
    for envelope, _message in messages:
        assert envelope == [b"Return-Path: <alice@sender.example>", b"Delivered-To: bob@rcpt.example"]


def test_percentiles_against_a_known_server_delay(tmp_path):
    """Every message waits 100 ms for the DATA reply, one at a time: each sample is at least 100 ms,
    and none can exceed the run's time less the others' 100 ms each."""
    count, delay_ms = 10, 100.0
    with loadkit_sink(tmp_path, "--delay", "data:100ms") as (url, read_stats):
        result = source("-m", str(count), url.removeprefix("smtp://"))
        stats = read_stats()
    assert result.returncode == 0, result.stdout + result.stderr
    *counts, elapsed = SUMMARY.search(result.stdout).groups()
    assert counts == [str(count), str(count), "0"] and stats["messages"] == count
    p50, p95, p99, highest = (float(value) for value in LATENCY.search(result.stdout).groups())
    assert delay_ms * (1 - HDR_PRECISION) <= p50 <= p95 <= p99 <= highest
    assert highest <= (float(elapsed) * 1000 - (count - 1) * delay_ms) * (1 + HDR_PRECISION)


def test_source_over_implicit_tls_with_auth(tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:s3cret\n")
    with loadkit_sink(tmp_path, "--implicit-tls", "--auth-users", str(users)) as (url, read_stats):
        assert url.startswith("smtps://")
        result = source("-s", "2", "-m", "20", "-d", "--tls", "--tls-no-verify", "--auth", "alice:s3cret",
                        url.removeprefix("smtps://"))
        stats = read_stats()
    assert result.returncode == 0, result.stdout + result.stderr
    assert SUMMARY.search(result.stdout).groups()[:3] == ("20", "20", "0")
    assert (stats["messages"], stats["sessions"], stats["tls"]["sessions"], stats["auth"]["ok"]) == (20, 2, 2, 2)


def test_locust_user_over_smtps_and_submission_with_auth(tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:s3cret\n")
    locustfile = Path(__file__).with_name("tls_auth_locustfile.py")
    for scheme, options in (("smtps", ("--implicit-tls",)), ("submission", ())):
        with loadkit_sink(tmp_path, *options, "--auth-users", str(users)) as (url, read_stats):
            host = f"{scheme}://alice:s3cret@{url.split('://', 1)[1]}"
            result = run_locust(str(locustfile), host, tmp_path / scheme)
            stats = read_stats()
        assert result.returncode == 0, result.stderr[-2000:]
        row = aggregated(tmp_path / scheme)
        assert int(row["Failure Count"]) == 0, scheme
        assert int(row["Request Count"]) == stats["messages"] > 0, scheme
        # a user stopped by the run's end may be between handshake and AUTH: at most one session each
        assert stats["sessions"] - USERS <= stats["auth"]["ok"] <= stats["tls"]["sessions"] <= stats["sessions"], scheme
        assert stats["auth"]["ok"] > USERS, scheme
        assert stats["auth"]["failed"] == stats["tls"]["failures"] == 0, scheme
