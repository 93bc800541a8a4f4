"""The start form: hosts and thresholds refused before a swarm, run options, the sink's control port.

In-process fakes only (a resolver, an HTTP opener, user classes): the
browser tests drive the same checks through Locust's real /swarm.
"""

from __future__ import annotations

import io
import json
import socket

import pytest

from loadkit.options import RunOptionError, RunOptions, count_option, run_option_problem
from loadkit.thresholds import ThresholdError
from loadkit.webui._sink import SinkControlError, SinkCounters, stats_url
from loadkit.webui._swarm import host_problem, parse_checks


class SmtpLike:
    protocol = "smtp"
    messages_per_connection = 10
    payload_size = 5120


class LmtpLike(SmtpLike):
    protocol = "lmtp"


class WebUser:
    host = "http://example.com"


def resolves(host, port, type=None):
    return [(socket.AF_INET, type, 6, "", ("127.0.0.1", port))]


def unknown(host, port, type=None):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_a_usable_host_passes():
    assert host_problem("smtp://mx.test:25", [SmtpLike], resolve=resolves) is None
    assert host_problem("lmtp+unix:///run/lmtp", [LmtpLike], resolve=unknown) is None


def test_a_host_without_a_scheme_is_refused_with_what_to_type():
    problem = host_problem("127.0.0.1:25", [SmtpLike], resolve=resolves)
    assert problem.startswith("unsupported host '127.0.0.1:25': use smtp://host[:port]")


def test_a_scheme_the_users_do_not_speak_is_refused():
    problem = host_problem("smtp://127.0.0.1:24", [LmtpLike], resolve=resolves)
    assert problem == "LmtpLike speaks LMTP but the host is smtp://127.0.0.1:24: use lmtp://host:port"


def test_an_unknown_host_is_refused():
    assert host_problem("smtp://nowhere.invalid", [SmtpLike], resolve=unknown) == \
        "unknown host 'nowhere.invalid': Name or service not known"


def test_users_that_send_no_mail_are_not_judged():
    assert host_problem("http://example.com", [WebUser], resolve=unknown) is None


def test_thresholds_from_the_form():
    checks = parse_checks(["p95<250ms, phase.rcpt:p99<20ms;no_worker_lost\nfail_ratio<1%", ""])
    assert [check.expression for check in checks] == ["p95<250ms", "phase.rcpt:p99<20ms", "no_worker_lost", "fail_ratio<1%"]
    assert parse_checks([""]) == []
    with pytest.raises(ThresholdError, match="cannot read threshold 'p99<oops'"):
        parse_checks(["p95<1s, p99<oops"])


def test_run_options_are_counts_or_empty():
    assert count_option("message_size", "") is None
    assert count_option("message_size", " 2048 ") == 2048
    assert count_option("messages_per_connection", 0) == 0
    with pytest.raises(RunOptionError, match="--message-size '5k': expected a whole number"):
        count_option("message_size", "5k")
    assert run_option_problem({"message_size": "", "messages_per_connection": "-1"}) == \
        "--messages-per-connection '-1': expected a whole number of at least 0"
    assert run_option_problem({"check": "p95<1s"}) is None


class Options:
    def __init__(self, **values):
        self.__dict__.update(values)


class Environment:
    def __init__(self, user_classes, **options):
        self.user_classes = user_classes
        self.parsed_options = Options(**options)


def test_run_options_set_the_mail_users_and_an_empty_one_gives_the_locustfiles_back():
    class Sender(SmtpLike):
        payload_size = 1000

    options = RunOptions()
    options.apply(Environment([Sender, WebUser], message_size="2048", messages_per_connection="0"))
    assert (Sender.payload_size, Sender.messages_per_connection) == (2048, 0)
    assert not hasattr(WebUser, "payload_size")
    options.apply(Environment([Sender], message_size="", messages_per_connection="3"))
    assert (Sender.payload_size, Sender.messages_per_connection) == (1000, 3)
    options.apply(Environment([Sender], message_size="", messages_per_connection=""))
    assert (Sender.payload_size, Sender.messages_per_connection) == (1000, 10)


def test_the_sink_control_address():
    assert stats_url("127.0.0.1:8025") == "http://127.0.0.1:8025/stats"
    assert stats_url("http://127.0.0.1:8025/") == "http://127.0.0.1:8025/stats"
    assert stats_url("http://127.0.0.1:8025/stats") == "http://127.0.0.1:8025/stats"
    with pytest.raises(SinkControlError, match="expected HOST:PORT"):
        stats_url("localhost")


def test_the_sink_is_read_at_most_once_a_second_and_an_error_is_kept():
    clock = [0.0]
    answers = [{"sessions": 3, "messages": 7}, OSError("Connection refused")]
    opened = []

    def opener(url, timeout):
        opened.append((url, timeout))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return io.BytesIO(json.dumps(answer).encode())

    sink = SinkCounters(opener=opener, clock=lambda: clock[0])
    assert sink.read() is None  # no address: nothing read
    sink.point_at("127.0.0.1:9")
    assert sink.read() == {"sessions": 3, "messages": 7}
    clock[0] = 0.5
    assert sink.read() == {"sessions": 3, "messages": 7}
    assert len(opened) == 1
    clock[0] = 1.5
    assert sink.read() == {"sessions": 3, "messages": 7}  # the last reading stays, with the error beside it
    assert sink.error == "sink control http://127.0.0.1:9/stats: Connection refused"
    assert opened == [("http://127.0.0.1:9/stats", 1.0)] * 2
