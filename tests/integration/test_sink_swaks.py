"""swaks against the sink: SMTP and LMTP, with and without --pipeline.

swaks turns the LF of ``--data`` into CRLF, dot-stuffs, and ends a body
that lacks a final newline with CRLF: the 31 bytes below arrive as 32 on
the wire (one stuffed dot) and count as 31.
"""

from __future__ import annotations

import subprocess

import pytest

from loadkit.sink import SinkServer

pytestmark = pytest.mark.peer("swaks")

DATA = r"Subject: t\n\n.dot line\nbody"
DELIVERED = b"Subject: t\r\n\r\n.dot line\r\nbody\r\n"
RECIPIENTS = ["a@example.com", "b@example.com", "c@example.com"]


def swaks(path: str, address, *options: str) -> subprocess.CompletedProcess:
    host, port = address
    return subprocess.run(
        [path, "--server", f"{host}:{port}", "--from", "s@example.com", "--to", ",".join(RECIPIENTS),
         "--data", DATA, "--helo", "client.test", *options],
        capture_output=True, text=True, timeout=30,
    )


@pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipeline"])
@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_swaks_delivers_and_the_sink_counts_exactly(peer, lmtp, pipeline):
    path = peer("swaks")
    options = (["--protocol", "LMTP"] if lmtp else []) + (["--pipeline"] if pipeline else [])
    with SinkServer("127.0.0.1:0", lmtp=lmtp) as server:
        for _ in range(2):
            result = swaks(path, server.address, *options)
            assert result.returncode == 0, result.stdout + result.stderr
    transcript = result.stdout
    assert "<** " not in transcript  # swaks marks every unexpected reply so
    if pipeline:
        assert " -> MAIL FROM:<s@example.com>\n -> RCPT TO:<a@example.com>" in transcript
    if lmtp:  # swaks reads (and shows) one end-of-data reply per recipient
        assert transcript.count("<-  250 2.0.0 Ok: queued") == len(RECIPIENTS)
    else:
        assert transcript.count("<-  250 2.0.0 Ok: queued") == 1
    stats = server.stats
    assert (stats.sessions, stats.messages, stats.recipients) == (2, 2, 2 * len(RECIPIENTS))
    assert stats.bytes == 2 * len(DELIVERED)


def test_swaks_sees_a_refused_transaction(peer):
    with SinkServer("127.0.0.1:0", max_size=10) as server:
        result = swaks(peer("swaks"), server.address)
    assert result.returncode != 0
    assert "552 5.3.4 Message size exceeds fixed limit" in result.stdout
    assert server.stats.messages == 0
