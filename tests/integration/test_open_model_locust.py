"""`locust --rate`: the open model against `loadkit sink`, counted from the results folder.

The sink is a real process; a stall is SIGSTOP/SIGCONT on it, so nothing in
it is faked. Every run is bounded by -t and by the subprocess timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

from loadkit.hdr import decode, merge_into, new_histogram, percentiles_ms
from tests.integration.peers import loadkit_sink, master_and_workers, wait_for_run_start
from tests.integration.test_metrics_locust_headless import (
    locust_aggregated,
    only_folder,
    read_intervals,
)

pytestmark = pytest.mark.slow

LOCUSTFILES = Path(__file__).resolve().parents[2] / "locustfiles"
PACED = str(Path(__file__).with_name("paced_smtp_locustfile.py"))


def run_locust(host: str, results: Path, seconds: int, *extra: str, locustfile: str | None = None,
               during=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "locust", "-f", locustfile or str(LOCUSTFILES / "smtp.py"), "-H", host,
               "--headless", "-r", "100", "-t", f"{seconds}s", "--only-summary", "--results", str(results), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if during is not None:
        during()
    out, err = process.communicate(timeout=seconds + 90)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def per_second(intervals: list[dict], kind: str, name: str) -> list[int]:
    return [sum(s["ok"] for s in interval["series"] if s["kind"] == kind and s["name"] == name)
            for interval in intervals]


def percentile(intervals: list[dict], kind: str, name: str, level: float) -> float:
    merged = new_histogram()
    for interval in intervals:
        for series in interval["series"]:
            if series["kind"] == kind and series["name"] == name and series.get("histogram"):
                merge_into(merged, decode(series["histogram"]))
    return percentiles_ms(merged, [level])[level]


def count_at_least(intervals: list[dict], kind: str, name: str, milliseconds: float) -> int:
    """How many recorded values were `milliseconds` or more (histograms keep whole microseconds)."""
    count = 0
    for interval in intervals:
        for series in interval["series"]:
            if series["kind"] == kind and series["name"] == name and series.get("histogram"):
                histogram = decode(series["histogram"])
                count += sum(item.count_at_value_iterated_to for item in histogram.get_recorded_iterator()
                             if item.value_iterated_to >= milliseconds * 1000)
    return count


def test_rate_is_held_within_two_percent(tmp_path):
    seconds, rate = 25, 200
    with loadkit_sink(tmp_path, "--delay", "data:2ms") as (url, read_stats):
        result = run_locust(url, tmp_path / "results", seconds, "-u", "20", "--rate", str(rate),
                            "--check", "rate_reached", "--check", "dropped==0")
        sink = read_stats()
    assert result.returncode == 0, result.stderr[-3000:]
    folder = only_folder(tmp_path / "results")
    intervals = read_intervals(folder)
    sent = per_second(intervals, "open", "sent")
    offered = per_second(intervals, "open", "offered")
    steady = sent[2:-2]  # whole seconds away from the start and the stop
    assert len(steady) >= seconds - 5
    achieved = sum(steady) / len(steady)
    # Messages meant for the first seconds but sent in the window: a busy machine that stalled the
    # generator before it catches up there (sent by their own second, offered by their intended one).
    caught_up = max(0, sum(offered[:2]) - sum(sent[:2]))
    assert -0.02 * rate <= achieved - rate <= 0.02 * rate + caught_up / len(steady), (achieved, caught_up, steady)
    run = json.loads((folder / "run.json").read_text())
    assert run["open_model"]["sent"] == sum(sent) and run["open_model"]["offered"] == sum(offered)
    assert run["open_model"]["dropped"] == 0
    requests = int(locust_aggregated(folder)["Request Count"])
    assert requests == sink["messages"] == run["recorded_requests"]
    # every message has its three times: the request (corrected), service and lag
    for name in ("service", "lag"):
        assert sum(per_second(intervals, "phase", name)) == requests


def _stall(pid: int, results: Path, after: float, seconds: float) -> threading.Thread:
    """Stop the sink `after` seconds into the run (not after the start of a process that may be slow to
    start on a busy machine), for `seconds`."""
    def stall():
        started = wait_for_run_start(results)
        time.sleep(max(0.0, started + after - time.time()))
        os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=stall, daemon=True)
    thread.start()
    return thread


def _sink_pid(url: str) -> int:
    port = url.rsplit(":", 1)[-1]
    out = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
    return int(out.split("pid=", 1)[1].split(",", 1)[0])


def test_a_two_second_stall_shows_in_corrected_latency_and_the_closed_model_hides_it(tmp_path):
    """Coordinated omission: 200/s, 10 sessions, the sink stopped once for 2 s.

    Counted, not timed against a fixed bound: a message that waited through at least the stall's first
    second is one the stall delayed. The open model keeps its schedule, so every arrival due in that second
    (rate x 1 s) waits; the closed model sends nothing while its users wait, so at most one message per
    user does. A busy machine makes the open model's count larger, not smaller."""
    rate, users, stall = 200, 10, 2.0
    late_ms = 1000 * (stall - 1.0)
    latencies = {}
    for model, extra, locustfile in (("open", ["--rate", str(rate)], None),
                                     ("closed", [], PACED)):  # 10 users, one message each 50 ms: 200/s
        with loadkit_sink(tmp_path, "--delay", "data:2ms") as (url, read_stats):
            pid = _sink_pid(url)
            results = tmp_path / model
            result = run_locust(url, results, 15, "-u", str(users), *extra, locustfile=locustfile,
                                during=lambda pid=pid, results=results: _stall(pid, results, 6.0, stall).join())
            read_stats()
        assert result.returncode == 0, result.stderr[-3000:]
        intervals = read_intervals(only_folder(results))
        latencies[model] = {
            "p99": percentile(intervals, "request", "send", 99),
            "late": count_at_least(intervals, "request", "send", late_ms),
            "service.late": count_at_least(intervals, "phase", "service", late_ms) if model == "open" else None,
            "requests": sum(per_second(intervals, "request", "send")),
        }
    open_, closed = latencies["open"], latencies["closed"]
    # the open model: every arrival due in the stall's first second waited a second or more, and its p99
    # shows it because those are more than 1% of the run
    assert open_["late"] >= rate * (stall - 1.0), latencies
    assert open_["late"] > 0.01 * open_["requests"] and open_["p99"] >= late_ms, latencies
    # ...in the corrected latency only: the service time of the messages the sink held, one per session
    assert open_["service.late"] <= users, latencies
    # the same stall, hidden by the closed model: one late message per user at most, under 1% of the run,
    # so its p99 is not one of them
    assert closed["late"] <= users, latencies
    assert closed["requests"] > 100 * users and closed["p99"] < late_ms, latencies


def test_drop_mode_counts_drops_each_second_and_queue_mode_lag_grows(tmp_path):
    # 2 sessions and 100 ms per message: 20/s at most, 50/s offered
    with loadkit_sink(tmp_path, "--delay", "data:100ms") as (url, read_stats):
        dropped_run = run_locust(url, tmp_path / "drop", 8, "-u", "10", "--rate", "50", "--max-sessions", "2",
                                 "--overload", "drop", "--check", "dropped==0")
        queued_run = run_locust(url, tmp_path / "queue", 8, "-u", "10", "--rate", "50", "--max-sessions", "2")
        sink = read_stats()
    assert dropped_run.returncode == 3, dropped_run.stderr[-3000:]  # dropped==0 fails
    assert queued_run.returncode == 0, queued_run.stderr[-3000:]

    folder = only_folder(tmp_path / "drop")
    intervals = read_intervals(folder)
    offered, sent, dropped = (per_second(intervals, "open", name) for name in ("offered", "sent", "dropped"))
    assert sum(offered) == sum(sent) + sum(dropped)
    steady = dropped[2:-2]
    assert steady and all(count >= 20 for count in steady), dropped  # ~30 a second
    assert all(count <= 25 for count in sent[2:-2]), sent
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert any(event["kind"] == "rate_not_reached" for event in events)

    intervals = read_intervals(only_folder(tmp_path / "queue"))
    lags = [percentile([interval], "phase", "lag", 50) for interval in intervals[1:-1]
            if any(s["name"] == "lag" for s in interval["series"])]
    # 30 more a second than the sessions take: the queue, and the lag, grow about 1.5 s each second
    assert len(lags) >= 4 and all(b > a for a, b in pairwise(lags)), lags
    assert lags[-1] - lags[0] >= 1500, lags
    assert sink["messages"] > 0


def worker_report_interval() -> float:
    """Locust's WORKER_REPORT_INTERVAL, read in a subprocess: importing Locust here would monkey-patch this one."""
    code = "from locust.runners import WORKER_REPORT_INTERVAL; print(WORKER_REPORT_INTERVAL)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return float(out.stdout)


def test_two_workers_split_the_rate_and_the_survivor_takes_it_all(tmp_path):
    results = tmp_path / "results"
    rate = 100
    with loadkit_sink(tmp_path, "--delay", "data:2ms") as (url, read_stats):
        options = ["-u", "20", "-r", "20", "-t", "24s", "--rate", str(rate), "--results", str(results)]
        with master_and_workers(str(LOCUSTFILES / "smtp.py"), url, options) as (master, workers):
            started = wait_for_run_start(results)
            time.sleep(max(0.0, started + 11 - time.time()))  # 11 s into the run, however slow the start
            workers[0].send_signal(signal.SIGKILL)
            killed_at = time.time()
            _out, err = master.communicate(timeout=90)  # the survivor's exit is checked after the block
        read_stats()
    assert master.returncode == 0, err[-3000:]
    folder = only_folder(results)
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    resplits = [e for e in events if e["kind"] == "open_model_resplit"]
    # On a busy machine Locust can miss a live worker's heartbeats and mark it missing until the next one:
    # the rate goes to one worker and back to two. Only the kill leaves one for good, and only once.
    before_kill = [e["detail"].split(" worker")[0] for e in resplits if e["time"] <= killed_at]
    assert before_kill == ["rate split among 1", "rate split among 2"] * (len(before_kill) // 2), events
    resplit = [e for e in resplits if e["time"] > killed_at]
    assert len(resplit) == 1 and "1 worker" in resplit[0]["detail"], events
    assert resplit[0]["time"] < killed_at + 10
    assert any(e["kind"] == "worker_lost" for e in events)
    run = json.loads((folder / "run.json").read_text())
    intervals = read_intervals(folder)
    # before the kill both offered; each about half (the shares count the whole run, so the survivor has more).
    # Offered, not sent: the schedule each worker took is what the split decides; what a busy machine
    # manages to send of it is a count (queued, none dropped), not a rate.
    # An arrival is counted offered in the second the worker's loop reaches it, which on a busy machine is
    # late by the loop's lag (sent minus intended, measured per second): a second's count may miss up to
    # rate x lag arrivals, which a later second gives back. The margins are that lag, measured in this run.
    lag = [percentile([i], "phase", "lag", 100) / 1000 if any(s["name"] == "lag" for s in i["series"]) else 0.0
           for i in intervals]

    def offered_in(window) -> tuple[list[int], list[float]]:
        chosen = [n for n, i in enumerate(intervals) if window(i)]
        counts = [sum(s["ok"] for s in intervals[n]["series"] if s["kind"] == "open" and s["name"] == "offered")
                  for n in chosen]
        return counts, [max(lag[max(n - 1, 0):n + 2]) for n in chosen]  # the lag on either edge of the second

    def assert_the_rate(counts: list[int], lags: list[float]) -> None:
        # the mean per second within 10%, give or take the arrivals the lag held over the window's edges;
        # each second within 25%, give or take those its own edges held
        assert counts and abs(sum(counts) - rate * len(counts)) <= 0.1 * rate * len(counts) + rate * max(lags), (
            counts, lags)
        assert all(abs(count - rate) <= 0.25 * rate + rate * late for count, late in zip(counts, lags)), (
            counts, lags)

    survivor_after, survivor_lag = offered_in(
        lambda i: i["start"] >= resplit[0]["time"] + 2 and i["end"] <= run["stopped_at"] - 1)
    assert_the_rate(survivor_after, survivor_lag)  # the whole rate on the survivor
    # A killed worker's counts since its last report (one each WORKER_REPORT_INTERVAL) never reach the master:
    # the seconds before the kill are whole only up to that report.
    last_whole = killed_at - worker_report_interval() - 1
    before, before_lag = offered_in(lambda i: run["started_at"] + 3 <= i["start"] and i["end"] <= last_whole)
    assert_the_rate(before, before_lag)
    assert 0 < run["open_model"]["sent"] <= run["open_model"]["offered"] and run["open_model"]["dropped"] == 0
    assert len(run["worker_shares"]) == 2
