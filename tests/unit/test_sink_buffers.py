"""What ``--store`` may hold in memory: `--max-buffer` per session, `--max-buffer-total` for all."""

from __future__ import annotations

import pytest

from loadkit.sink import SinkError, SinkServer, SinkSettings
from tests.unit.test_sink_replies_counted import wait_until
from tests.unit.test_sink_server import connect, read_replies

ENVELOPE = b"EHLO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
LINE = b"x" * 998 + b"\r\n"


def open_transaction(server, lmtp: bool = False):
    sock = connect(server)
    read_replies(sock, 1)
    if lmtp:
        sock.sendall(b"LHLO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n")
    else:
        sock.sendall(ENVELOPE)
    replies = read_replies(sock, 5 if lmtp else 4)
    assert replies[-1].startswith(b"354")
    return sock


def test_a_message_past_one_sessions_buffer_is_refused_552_and_the_session_goes_on(tmp_path):
    with SinkServer("127.0.0.1:0", store=str(tmp_path), max_size=0, max_buffer=100_000) as server:
        budget = server.profile.buffers
        with open_transaction(server) as sock:
            sock.sendall(LINE * 200)  # 200 KB
            sock.sendall(b".\r\n")
            assert read_replies(sock, 1) == [b"552 5.3.4 Error: message too big for the sink's buffer (--max-buffer)"]
            sock.sendall(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nsmall\r\n.\r\n")
            assert read_replies(sock, 4)[-1] == b"250 2.0.0 Ok: queued"
        assert budget.used == 0
    stats = server.stats
    assert (stats.messages, stats.stored, stats.over_buffer, stats.buffers_full) == (1, 1, 1, 0)
    assert stats.as_dict()["store"]["over_buffer"] == 1
    assert stats.reply_codes()["552"] == 1


def test_all_sessions_past_the_total_get_451_and_the_others_are_stored(tmp_path):
    with SinkServer("127.0.0.1:0", store=str(tmp_path), max_buffer=100_000, max_buffer_total=150_000) as server:
        budget = server.profile.buffers
        with open_transaction(server) as first, open_transaction(server) as second:
            first.sendall(LINE * 90)
            wait_until(lambda: budget.used >= 89_000)
            second.sendall(LINE * 90)  # 180 KB together: past the total
            # The second ends while the first still holds its 90 KB (ending the first before would free them)
            second.sendall(b".\r\n")
            assert read_replies(second, 1) == [b"451 4.3.1 Error: the sink's buffers are full, try again later"]
            first.sendall(b".\r\n")
            assert read_replies(first, 1) == [b"250 2.0.0 Ok: queued"]
        wait_until(lambda: budget.used == 0)
    stats = server.stats
    assert (stats.messages, stats.stored, stats.over_buffer, stats.buffers_full) == (1, 1, 0, 1)
    assert stats.reply_codes()["451"] == 1


def test_a_session_closed_mid_data_gives_its_buffer_back(tmp_path):
    with SinkServer("127.0.0.1:0", store=str(tmp_path)) as server:
        budget = server.profile.buffers
        sock = open_transaction(server)
        sock.sendall(LINE * 500)
        wait_until(lambda: budget.used >= 499_000)
        sock.close()
        wait_until(lambda: budget.used == 0)
    assert server.stats.messages == 0


def test_lmtp_refuses_once_per_recipient(tmp_path):
    server = SinkServer("127.0.0.1:0", lmtp=True, store=str(tmp_path), max_buffer=10_000)
    with server, open_transaction(server, lmtp=True) as sock:
        sock.sendall(LINE * 20 + b".\r\n")
        assert read_replies(sock, 2) == [b"552 5.3.4 Error: message too big for the sink's buffer (--max-buffer)"] * 2
    assert (server.stats.messages, server.stats.over_buffer) == (0, 1)


def test_without_the_store_nothing_is_bounded_because_nothing_is_held():
    with SinkServer("127.0.0.1:0", max_size=0, max_buffer=1000) as server:
        assert server.profile.buffers is None
        with open_transaction(server) as sock:
            sock.sendall(LINE * 100 + b".\r\n")
            assert read_replies(sock, 1) == [b"250 2.0.0 Ok: queued"]
    assert server.stats.bytes == 100 * len(LINE)


@pytest.mark.parametrize("keywords, message", [
    ({"max_buffer": 0}, "--max-buffer and --max-buffer-total must be at least 1 byte"),
    ({"max_buffer_total": -1}, "--max-buffer and --max-buffer-total must be at least 1 byte"),
    ({"max_buffer": 200, "max_buffer_total": 100}, "--max-buffer 200 is more than --max-buffer-total 100"),
])
def test_bad_buffer_settings_are_one_line(keywords, message):
    with pytest.raises(SinkError, match=message):
        SinkSettings("127.0.0.1:0", **keywords)
