"""What the sink keeps and reads: --store with smtp-source, traces and duplicates with smtplib."""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
import time

import pytest

from loadkit.hdr import decode
from loadkit.messages import MessageFactory
from loadkit.sink import SinkServer
from tests.integration.test_sink_cli import sink_process

MAILDIR_NAME = re.compile(r"[0-9]+\.M[0-9]{6}P[0-9]+Q[0-9]+\.[A-Za-z0-9._-]+\Z")


@pytest.mark.peer("smtp-source")
def test_store_keeps_messages_as_maildir_files_up_to_store_max(peer, tmp_path):
    store = tmp_path / "maildir"
    options = ["--store", str(store), "--store-max", "30", "127.0.0.1:0"]
    with sink_process(*options, stats_path=str(tmp_path / "stats.json")) as sink:
        result = subprocess.run(
            [peer("smtp-source"), "-s", "5", "-m", "50", "-l", "1000", "-f", "../../escape@example.com",
             f"127.0.0.1:{sink.port}"], capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        stats = sink.terminate()
    assert stats["messages"] == 50
    assert stats["store"] == {"stored": 30, "skipped": 20, "failed": 0, "over_buffer": 0, "buffers_full": 0}
    names = os.listdir(store / "new")
    assert len(names) == 30 and len(set(names)) == 30
    assert all(MAILDIR_NAME.match(name) for name in names), names[:3]
    assert os.listdir(store / "tmp") == [] and sorted(os.listdir(tmp_path)) == ["maildir", "stats.json"]
    for name in names:
        content = (store / "new" / name).read_bytes()
        assert content.startswith(b"Return-Path: <../../escape@example.com>\r\nDelivered-To: ")
        body = content.split(b"\r\n\r\n", 1)[1]
        assert len(body) == 1000 + 2  # smtp-source's -l payload and its CRLF


def test_trace_delays_and_a_duplicate_over_smtplib():
    factory = MessageFactory(payload_size=3000, seed=5, run_id="t1", source_tag="tests")
    with SinkServer("127.0.0.1:0") as server:
        host, port = server.address
        started = time.time()
        with smtplib.SMTP(host, port, timeout=10) as client:
            messages = [factory.build() for _ in range(20)]
            for message in messages:
                client.sendmail(factory.sender, [factory.recipient], message)
            client.sendmail(factory.sender, [factory.recipient], messages[7])  # the same trace again
            client.sendmail(factory.sender, [factory.recipient], b"Subject: untraced\r\n\r\nx\r\n")
        elapsed_ms = (time.time() - started) * 1000
    record = server.stats.as_dict()["trace"]
    assert server.stats.messages == 22
    assert (record["messages"], record["duplicates"], record["early"]) == (21, 1, 0)
    assert 0 < record["delay_ms"]["max"] <= elapsed_ms + 1
    assert decode(record["delay_histogram"]).total_count == 21


def test_trace_off_and_in_the_stats_file(tmp_path):
    factory = MessageFactory(payload_size=100, seed=1)
    with sink_process("--no-trace", "127.0.0.1:0", stats_path=str(tmp_path / "off.json")) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
            client.sendmail(factory.sender, [factory.recipient], factory.build())
        stats = sink.terminate()
    assert stats["messages"] == 1 and stats["trace"] is None
    with sink_process("127.0.0.1:0", stats_path=str(tmp_path / "on.json")) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
            client.sendmail(factory.sender, [factory.recipient], factory.build())
        stats = sink.terminate()
    assert stats["trace"]["messages"] == 1 and stats["trace"]["delay_ms"]["p50"] > 0
