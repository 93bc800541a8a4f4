"""The benchmark's arithmetic and wiring: which runs it makes, what each ratio divides by, the
TLS handshake's cost, the LMTP verdict, the HTTP overhead and the goals it prints.

The measurements themselves take minutes and are not tests; what turns them into ratios is, and
a wrong baseline or a swapped flag would print a confident wrong number.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # all.py imports its siblings by name
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


mail = load("run")
web = load("apache_bench")
everything = load("all")


def measured(pairing, seconds: float, cpu: float = 0.0, server_cpu: float = 0.0, sending: float | None = None):
    pairing.seconds.append(seconds)
    pairing.cpu_seconds.append(cpu)
    pairing.server_cpu_seconds.append(server_cpu)
    if sending is not None:
        pairing.sending_seconds.append(sending)
    return pairing


def test_every_client_mode_has_its_baseline_and_loadkit_beside_it():
    args = mail.parse_args(["--sides", "client", "--skip-smtplib"])
    pairings = {(p.client, p.server, p.mode): p.messages for p in mail.pairings_for(args)}
    assert pairings == {
        ("smtp-source", "smtp-sink", "reuse"): 50000, ("loadkit source", "smtp-sink", "reuse"): 50000,
        ("smtp-source", "smtp-sink", "new"): 20000, ("loadkit source", "smtp-sink", "new"): 20000,
        ("smtp-source", "smtp-sink", "lmtp"): 50000, ("loadkit source", "smtp-sink", "lmtp"): 50000,
        ("loadkit source", "loadkit sink", "tls-reuse"): 50000,
        (mail.TLS_CLIENT, "loadkit sink", "tls-reuse"): 50000,
        ("loadkit source", "loadkit sink", "tls-new"): 5000,
        (mail.TLS_CLIENT, "loadkit sink", "tls-new"): 5000,
    }


def test_the_sink_side_alone_runs_only_reuse_and_new():
    args = mail.parse_args(["--sides", "sink"])
    assert {(p.client, p.server, p.mode) for p in mail.pairings_for(args)} == {
        ("smtp-source", "smtp-sink", "reuse"), ("smtp-source", "loadkit sink", "reuse"),
        ("smtp-source", "smtp-sink", "new"), ("smtp-source", "loadkit sink", "new"),
    }


@pytest.mark.parametrize("client, mode, expected", [
    ("smtp-source", "lmtp", ["-d", "-L"]),
    ("loadkit source", "lmtp", ["-d", "-L"]),
    ("loadkit source", "new", []),
    (mail.TLS_CLIENT, "tls-reuse", ["-d", "--starttls", "--tls-no-verify"]),
    (mail.TLS_CLIENT, "tls-new", ["--starttls", "--tls-no-verify"]),
    ("loadkit source", "tls-new", []),
])
def test_each_mode_passes_its_flags(client, mode, expected):
    args = mail.parse_args([])
    command, _env = mail.client_command(mail.Pairing(client, "smtp-sink", mode, 10), {"smtp-source": "smtp-source"},
                                        2525, args)
    flags = command[command.index("-l") + 2:-1]  # between the common flags and the target
    assert flags == expected
    assert command[-1] == "127.0.0.1:2525"


def test_tls_is_divided_by_loadkits_own_plain_path_and_the_rest_by_smtp_source():
    pairings = [
        measured(mail.Pairing("smtp-source", "smtp-sink", "lmtp", 1000), 0.1),
        measured(mail.Pairing("loadkit source", "smtp-sink", "lmtp", 1000), 0.4),
        measured(mail.Pairing("loadkit source", "loadkit sink", "tls-reuse", 1000), 0.5),
        measured(mail.Pairing(mail.TLS_CLIENT, "loadkit sink", "tls-reuse", 1000), 0.625),
    ]
    assert mail.ratio_of(pairings, pairings[1]) == pytest.approx(0.25)
    assert mail.ratio_of(pairings, pairings[3]) == pytest.approx(0.8)
    assert [mail.side_of(p) for p in pairings] == [None, "client", None, "client"]


def test_lmtp_is_judged_against_the_plain_ratio():
    pairings = [
        measured(mail.Pairing("smtp-source", "smtp-sink", "reuse", 1000), 0.1, cpu=0.02),
        measured(mail.Pairing("loadkit source", "smtp-sink", "reuse", 1000), 0.2, cpu=0.05),  # 0.5x, 0.4x per core
        measured(mail.Pairing("smtp-source", "smtp-sink", "lmtp", 1000), 0.1, cpu=0.02),
        measured(mail.Pairing("loadkit source", "smtp-sink", "lmtp", 1000), 0.25, cpu=0.04),  # 0.4x, 0.5x per core
    ]
    verdict = mail.lmtp_verdict(pairings)
    assert verdict == {"lmtp_ratio": 0.4, "reuse_ratio": 0.5, "lmtp_over_reuse": 0.8, "lmtp_over_reuse_per_core": 1.25,
                       "goal": 0.9, "met": False}


def test_the_handshake_costs_the_difference_in_cpu_per_message_of_one_connection_each():
    pairings = [
        measured(mail.Pairing("loadkit source", "loadkit sink", "tls-new", 1000), 1.0, cpu=0.15, server_cpu=0.1),
        measured(mail.Pairing(mail.TLS_CLIENT, "loadkit sink", "tls-new", 1000), 2.0, cpu=1.35, server_cpu=1.0),
    ]
    assert mail.handshake_cost(pairings) == {"client_us": 1200.0, "sink_us": 900.0}


@pytest.mark.parametrize("client, mode, messages, expected", [
    ("loadkit source", "tls-new", 500, (0, 0)),
    (mail.TLS_CLIENT, "tls-new", 500, (500, 500)),
    (mail.TLS_CLIENT, "tls-reuse", 500, (1, 20)),
    (mail.TLS_CLIENT, "tls-reuse", 3, (1, 3)),
])
def test_the_sink_must_count_one_tls_session_per_connection(client, mode, messages, expected):
    assert mail.tls_sessions(mail.Pairing(client, "loadkit sink", mode, messages), sessions=20) == expected


def test_results_carry_every_goal_the_lmtp_verdict_and_the_rate_after_start_up():
    args = mail.parse_args(["--sides", "client", "--modes", "reuse,lmtp", "--skip-smtplib", "--runs", "1"])
    pairings = [
        measured(mail.Pairing("smtp-source", "smtp-sink", "reuse", 1000), 0.1, cpu=0.02),
        measured(mail.Pairing("loadkit source", "smtp-sink", "reuse", 1000), 0.125, cpu=0.05, sending=0.1),
        measured(mail.Pairing("smtp-source", "smtp-sink", "lmtp", 1000), 0.1, cpu=0.02),
        measured(mail.Pairing("loadkit source", "smtp-sink", "lmtp", 1000), 0.125, cpu=0.05, sending=0.1),
    ]
    report = mail.results(pairings, args)
    assert [(g["mode"], g["ratio"], g["goal"], g["met"]) for g in report["goals"]] == [
        ("reuse", 0.8, 1.0, False), ("lmtp", 0.8, None, True), ("lmtp/reuse", 1.0, 0.9, True)]
    loadkit = report["measurements"][1]
    assert (loadkit["sending_rate"], loadkit["sending_ratio"]) == (10000.0, 1.0)


@pytest.mark.parametrize("argv", [["--modes", "reuse,bogus"], ["--messages-tls", "0"], ["--modes", ""]])
def test_bad_options_stop_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        mail.parse_args(argv)
    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err


def web_measure(client: str, rates: list[float], per_core: list[float]):
    one = web.Measure(client, "keepalive")
    one.rates, one.per_core = rates, per_core
    return one


def test_http_overhead_is_loadkits_user_over_the_plain_one_side_by_side():
    """The goal is judged on the paired rounds, round by round; the runs one after the other are told beside."""
    measures = {("plain", "keepalive"): web_measure("plain", [1000.0], [5000.0]),
                ("locust", "keepalive"): web_measure("locust", [1100.0], [5200.0])}
    pairs = {("plain", "keepalive"): web_measure("plain", [500.0, 400.0, 600.0], [5000.0, 4000.0, 6000.0]),
             ("locust", "keepalive"): web_measure("locust", [480.0, 300.0, 600.0], [4000.0, 3960.0, 5700.0])}
    args = SimpleNamespace(modes=["keepalive"])
    (row,) = web.metrics_overhead(measures, args, pairs)
    assert row == {"mode": "keepalive", "ratio": 0.96, "ratio_per_core": 0.95, "cpu_overhead_percent": 5.3,
                   "cpu_us_per_request": 250.0, "plain_cpu_us_per_request": 200.0,
                   "paired_ratios": [[0.96, 0.8], [0.75, 0.99], [1.0, 0.95]],
                   "best_ratio": 1.1, "best_ratio_per_core": 1.04, "median_ratio": 1.1, "median_ratio_per_core": 1.04,
                   "goal": 0.95, "met": True}


def test_http_overhead_one_after_the_other_is_told_by_each_clients_best_and_median_run():
    measures = {("plain", "keepalive"): web_measure("plain", [900.0, 1000.0, 700.0], [5000.0, 4000.0, 4500.0]),
                ("locust", "keepalive"): web_measure("locust", [980.0, 600.0, 800.0], [3000.0, 4900.0, 4000.0])}
    pairs = {("plain", "keepalive"): web_measure("plain", [500.0], [5000.0]),
             ("locust", "keepalive"): web_measure("locust", [450.0], [4500.0])}
    (row,) = web.metrics_overhead(measures, SimpleNamespace(modes=["keepalive"]), pairs)
    assert (row["best_ratio"], row["best_ratio_per_core"]) == (0.98, 0.98)
    assert (row["median_ratio"], row["median_ratio_per_core"]) == (0.889, 0.889)
    assert (row["ratio"], row["ratio_per_core"], row["met"]) == (0.9, 0.9, False)


def test_no_overhead_row_without_both_users_side_by_side():
    measures = {("plain", "keepalive"): web_measure("plain", [1000.0], [5000.0]),
                ("locust", "keepalive"): web_measure("locust", [960.0], [4000.0])}
    assert web.metrics_overhead(measures, SimpleNamespace(modes=["keepalive"]), {}) == []


def test_paired_clients_ask_for_copies_the_access_log_tells_apart(tmp_path):
    assert [web.paired_path(client, "/1k.bin") for client in web.PAIRED] == ["/plain/1k.bin", "/locust/1k.bin"]
    log = tmp_path / "access.log"
    log.write_text('127.0.0.1 - - [x] "GET /plain/1k.bin HTTP/1.1" 200 1024 90\n')
    counter = web.LogCounter(SimpleNamespace(access_log_path=log), ["/plain/1k.bin", "/locust/1k.bin"])
    with open(log, "a") as out:  # what was there before is not counted; a line half written is counted once whole
        out.write('127.0.0.1 - - [x] "GET /plain/1k.bin HTTP/1.1" 200 1024 90\n'
                  '127.0.0.1 - - [x] "GET /locust/1k.bin HTTP/1.1" 200 1024 90\n127.0.0.1 - - [x] "GET /loc')
        out.flush()
        assert counter.read() == {"/plain/1k.bin": 1, "/locust/1k.bin": 1}
        out.write('ust/1k.bin HTTP/1.1" 200 1024 90\n')
    assert counter.read() == {"/plain/1k.bin": 1, "/locust/1k.bin": 2}
    counter.close()


def test_apache_bench_windows_hold_a_least_number_of_requests():
    assert web.parse_args([]).requests == 50_000
    assert web.parse_args(["--quick"]).requests == 2000
    with pytest.raises(SystemExit):
        web.parse_args(["--requests", "0"])


def test_apache_bench_takes_only_known_clients():
    assert web.parse_args(["--clients", "plain,locust"]).clients == ["plain", "locust"]
    with pytest.raises(SystemExit):
        web.parse_args(["--clients", "plain,wrk"])


def test_the_goal_lines_name_every_goal_with_its_ratio():
    mail_report = {
        "measurements": [
            {"client": "smtp-source", "server": "smtp-sink", "mode": "reuse", "ratio": 1.0, "rate": 20000.0,
             "cpu_per_message_us": 18.0},
            {"client": "loadkit source", "server": "smtp-sink", "mode": "reuse", "ratio": 0.6, "rate": 12000.0,
             "cpu_per_message_us": 45.0, "sending_ratio": 0.75},
            {"client": "loadkit source", "server": "loadkit sink", "mode": "tls-reuse", "ratio": 1.0, "rate": 10000.0},
            {"client": mail.TLS_CLIENT, "server": "loadkit sink", "mode": "tls-reuse", "ratio": 0.92, "rate": 9200.0},
            {"client": mail.TLS_CLIENT, "server": "loadkit sink", "mode": "tls-new", "ratio": 0.2, "rate": 800.0},
        ],
        "lmtp": {"lmtp_ratio": 0.57, "reuse_ratio": 0.6, "lmtp_over_reuse": 0.95, "lmtp_over_reuse_per_core": 1.01},
        "tls_handshake_cpu_us": {"client_us": 1200.0, "sink_us": 900.0},
    }
    http = {"metrics_overhead": [{"mode": "keepalive", "ratio": 0.99, "ratio_per_core": 0.97,
                                  "cpu_overhead_percent": 3.1, "goal": 0.95, "met": True}]}
    lines = everything.goal_lines(mail_report, http)
    assert [(name, ratio, goal) for name, ratio, goal, _ in lines] == [
        ("1 client, reuse (-d)", 0.6, 1.0),
        ("3 LMTP / plain ratio", 0.95, 0.9),
        ("3 STARTTLS / plain, reuse", 0.92, 0.9),
        ("3 STARTTLS / plain, new conn.", 0.2, 0.0),
        ("4 HTTP metrics (keepalive)", 0.97, 0.95),
    ]
    assert "client 1.20 ms, sink 0.90 ms" in lines[3][3]
    assert "after start-up 0.75x; CPU per message 45.0 vs 18.0 us (0.40x per core)" in lines[0][3]
