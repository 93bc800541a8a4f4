"""The control port: faults changed while sessions run, at the protocol level and over loopback HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from loadkit.sink import FaultError, FaultPlan, SinkProfile, SinkServer, SinkStats
from loadkit.sink._control import LiveFaults, change_faults, fault_lines
from loadkit.sink._errors import SinkError
from tests.unit.test_sink_server import connect, read_replies

ENVELOPE = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRSET\r\n"


def rcpt_codes(smtp, count: int) -> list[bytes]:
    """The RCPT reply codes of `count` envelopes sent one after the other."""
    codes = []
    for _ in range(count):
        replies = smtp.feed(ENVELOPE).split(b"\r\n")
        codes.append(replies[1][:3])
    return codes


def test_a_session_already_open_follows_each_change():
    faults = LiveFaults(seed=7)
    smtp = SinkProfile(faults=faults).new_session(SinkStats(), peer=("127.0.0.1", 1))
    smtp.feed(b"HELO c\r\n")
    assert rcpt_codes(smtp, 50) == [b"250"] * 50  # no fault yet: nothing rejected
    faults.replace(["reject rcpt:550:0.5"])
    codes = rcpt_codes(smtp, 400)
    assert 150 <= codes.count(b"550") <= 250 and codes.count(b"550") + codes.count(b"250") == 400
    faults.replace([])
    assert rcpt_codes(smtp, 50) == [b"250"] * 50
    assert faults.lines == []


def test_the_command_lines_faults_stay_and_a_bad_line_changes_nothing():
    base = FaultPlan().add_reject_spec("mail:451")
    faults = LiveFaults(base)
    faults.replace(["reject rcpt:550", "delay data:5ms"])
    with pytest.raises(FaultError, match="bad fault 'explode rcpt'"):
        faults.replace(["reject rcpt:554", "explode rcpt"])
    with pytest.raises(FaultError, match="three digits"):
        faults.replace(["reject rcpt:5"])
    assert faults.lines == ["reject rcpt:550", "delay data:5ms"]
    assert [(rule.kind, rule.command) for rule in faults.rules] == [("reject", "MAIL"), ("reject", "RCPT"),
                                                                    ("delay", "DATA")]
    faults.replace([])
    assert [(rule.kind, rule.command) for rule in faults.rules] == [("reject", "MAIL")]


def test_fault_lines_drop_comments_blanks_and_none():
    assert fault_lines("# half of them\nreject rcpt:550:0.5\n\nnone\n  delay data:5ms  \n") == [
        "reject rcpt:550:0.5", "delay data:5ms"]


def http(url: str, body: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body.encode() if body is not None else None,
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_over_loopback_rejects_go_from_0_to_all_mid_session_and_the_change_is_timed():
    with SinkServer("127.0.0.1:0", control="127.0.0.1:0") as server:
        base = server.control.url
        assert server.control.address[0] == "127.0.0.1"
        with connect(server) as sock:
            read_replies(sock, 1)
            sock.sendall(b"HELO c\r\n" + ENVELOPE)
            assert [r[:3] for r in read_replies(sock, 4)] == [b"250", b"250", b"250", b"250"]
            before = time.time()
            status, text = http(base + "/faults", "reject rcpt:550")
            after = time.time()
            assert status == 200, text
            answer = json.loads(text)
            assert answer["faults"] == ["reject rcpt:550"]
            assert answer["change"]["what"] == "faults: reject rcpt:550"
            assert before <= answer["change"]["time"] <= after
            sock.sendall(ENVELOPE)  # the same connection: the change applies at its next command
            assert [r[:3] for r in read_replies(sock, 3)] == [b"250", b"550", b"250"]
            status, text = http(base + "/faults", "reject rcpt:fifty")
            assert status == 400 and text.strip() == "bad --reject 'rcpt:fifty': the code must be three digits, 4xx or 5xx"
            status, text = http(base + "/faults", "")
            assert status == 200 and json.loads(text)["change"]["what"] == "faults: none"
            sock.sendall(ENVELOPE + b"QUIT\r\n")
            assert [r[:3] for r in read_replies(sock, 4)] == [b"250", b"250", b"250", b"221"]
        status, text = http(base + "/stats")
        assert status == 200
        stats = json.loads(text)
        assert stats["faults"] == {"reject": {"rcpt": 1}}
        assert [change["what"] for change in stats["changes"]] == ["faults: reject rcpt:550", "faults: none"]
        assert stats["address"] == server.url
        status, text = http(base + "/faults")
        assert status == 200 and json.loads(text)["faults"] == []
        assert http(base + "/nowhere")[0] == 404
    assert [change["what"] for change in server.stats_record()["changes"]] == ["faults: reject rcpt:550",
                                                                               "faults: none"]


def test_a_control_address_that_cannot_be_used_is_one_sink_error():
    with pytest.raises(SinkError, match="--control 'nowhere': use HOST:PORT"):
        SinkServer("127.0.0.1:0", control="nowhere")
    with SinkServer("127.0.0.1:0", control="127.0.0.1:0") as first:
        taken = f"127.0.0.1:{first.control.address[1]}"
        server = SinkServer("127.0.0.1:0", control=taken)
        with pytest.raises(SinkError, match=f"cannot listen on --control {taken}: Address already in use"):
            server.start()


def test_the_command_prints_where_the_control_port_listens(tmp_path):
    stats_path = tmp_path / "stats.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "sink", "--control", "127.0.0.1:0", "--stats-json", str(stats_path),
         "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().startswith("loadkit sink: listening on smtp://127.0.0.1:")
        line = process.stdout.readline().strip()
        assert line.startswith("loadkit sink: control on http://127.0.0.1:")
        status, _ = http(line.rsplit(" ", 1)[-1] + "/faults", "reject mail:451:0.25")
        assert status == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    stats = json.loads(stats_path.read_text())
    assert [change["what"] for change in stats["changes"]] == ["faults: reject mail:451:0.25"]


def test_change_faults_returns_the_sinks_timed_change_and_says_why_in_one_line_when_refused():
    with SinkServer("127.0.0.1:0", control="127.0.0.1:0") as server:
        url = server.control.url
        before = time.time()
        change = change_faults(url, "delay data:50ms\n")
        after = time.time()
        assert change["what"] == "faults: delay data:50ms" and before <= change["time"] <= after
        with pytest.raises(SinkError) as refused:
            change_faults(url + "/", "reject rcpt:fifty")
        assert str(refused.value) == (f"the sink at {url}/ refused the change: "
                                      "bad --reject 'rcpt:fifty': the code must be three digits, 4xx or 5xx")
        assert server.stats_record()["changes"] == [change]  # the refused one changed nothing
    with pytest.raises(SinkError, match=rf"^cannot reach the sink's control port {url}: .*refused"):
        change_faults(url, "none", timeout=2)
