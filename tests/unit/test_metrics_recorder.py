"""The request listener and its tick, against synthetic request events with loadkit's real errors.

Locust itself is not imported here: it monkey-patches the standard library of
the whole test process. The recorder needs only an event hook and a runner's
user count from it; the integration tests run it inside real Locust.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from loadkit.metrics._intervals import IntervalStore
from loadkit.metrics._recorder import RequestRecorder
from loadkit.metrics._run import RunRecorder
from loadkit.metrics._series import Series
from loadkit.metrics._worker import WorkerReporter
from loadkit.smtp import Reply, SMTPReplyError, SMTPTimeoutError

SESSION = {"connect": 0.2, "banner": 0.3, "helo": 0.25, "mail": 0.4, "rcpt": 0.3, "data": 0.2, "end-of-data": 1.5, "quit": 0.1}
REUSED = {"mail": 0.4, "rcpt": 0.3, "data": 0.2, "end-of-data": 1.5}
REPO = Path(__file__).resolve().parents[2]


class RequestEvent:
    """The part of Locust's EventHook the recorder uses."""

    def __init__(self):
        self.listeners = []

    def add_listener(self, listener):
        self.listeners.append(listener)

    def remove_listener(self, listener):
        self.listeners.remove(listener)

    def fire(self, **kwargs):
        for listener in self.listeners:
            listener(**kwargs)


def environment(users: int = 0):
    return SimpleNamespace(events=SimpleNamespace(request=RequestEvent()), runner=SimpleNamespace(user_count=users))


def locust_total(requests: int, failures: int):
    return SimpleNamespace(num_requests=requests, num_failures=failures)


def unknown_user():
    return SMTPReplyError(Reply(550, [b"5.1.1 <nobody@loadkit.test>: no such user"]), "rcpt", "nobody@loadkit.test")


def fire(listener, n, name="send", phases=REUSED, exception=None, response_time=2.0, length=5120):
    for _ in range(n):
        listener(request_type="SMTP", name=name, response_time=response_time, response_length=length,
                 exception=exception, context={"phases": dict(phases), "delivered": 0 if exception else 1})


def by_key(series: list[Series]) -> dict:
    return {(s.kind, s.name): s for s in series}


def test_fold_counts_requests_phases_and_errors_exactly():
    recorder = RequestRecorder()
    fire(recorder.on_request, 90)
    fire(recorder.on_request, 10, phases=SESSION)
    fire(recorder.on_request, 3, phases={"mail": 0.4, "rcpt": 0.3, "data": 0.2}, exception=unknown_user())
    fire(recorder.on_request, 2, phases={"connect": 0.1}, exception=SMTPTimeoutError("no reply within 30s", "banner"))
    recorder.on_request(request_type="HTTP", name="/", response_time=5.0, response_length=10,
                        exception=ValueError("boom"), context={})
    series = by_key(recorder.fold(recorder.take()))

    send = series[("request", "send")]
    assert (send.ok, send.failed, send.bytes) == (100, 5, 105 * 5120)
    assert send.errors == {"550 5.1.1 at RCPT": 3, "timeout at BANNER": 2}
    assert send.histogram.total_count == 100  # accepted only: failures have their own histogram
    assert send.failed_histogram.total_count == 5
    rcpt = series[("phase", "rcpt")]
    assert (rcpt.ok, rcpt.failed, rcpt.errors) == (100, 3, {"550 5.1.1 at RCPT": 3})
    assert rcpt.histogram.total_count == 103  # the failed RCPT was timed too
    banner = series[("phase", "banner")]  # timed out: no banner time, one failure each
    assert (banner.ok, banner.failed, banner.histogram.total_count) == (10, 2, 10)
    assert series[("phase", "connect")].ok == 12
    assert series[("phase", "end-of-data")].ok == 100
    http = series[("request", "/")]
    assert (http.type, http.ok, http.failed, http.errors) == ("HTTP", 0, 1, {"ValueError('boom')": 1})

    example = recorder.examples[("SMTP", "send", "550 5.1.1 at RCPT")]
    assert (example.phase, example.code) == ("rcpt", "550")
    assert "no such user" in example.example
    assert recorder.examples[("HTTP", "/", "ValueError('boom')")].phase == ""
    assert recorder.fold(recorder.take()) == []  # take() started fresh buffers


def test_local_run_writes_intervals_errors_and_events(tmp_path):
    locust = environment(users=5)
    run = RunRecorder(locust, tmp_path, RequestRecorder()).start(ticking=False)
    first = run.current_start
    fire(locust.events.request.fire, 40, phases=SESSION)
    run.tick(first + 1)
    fire(locust.events.request.fire, 25)
    fire(locust.events.request.fire, 4, exception=unknown_user())
    run.tick(first + 2)
    fire(locust.events.request.fire, 7)
    locust.runner.user_count = 0
    facts = run.stop(locust_total=locust_total(76, 4))
    fire(locust.events.request.fire, 5)  # after the run: not recorded

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["start"] for line in lines] == [first, first + 1, first + 2]
    assert [line["users"] for line in lines] == [5, 5, 0]
    counts = [[(s["ok"], s["failed"]) for s in line["series"] if s["kind"] == "request"] for line in lines]
    assert counts == [[(40, 0)], [(25, 4)], [(7, 0)]]
    assert lines[1]["series"][0]["errors"] == {"550 5.1.1 at RCPT": 4}
    phases = {s["name"] for s in lines[0]["series"] if s["kind"] == "phase"}
    assert phases == set(SESSION)
    assert facts["recorded_requests"] == 76 and facts["recorded_failures"] == 4

    with open(tmp_path / "errors.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    assert rows[0]["error"] == "550 5.1.1 at RCPT" and rows[0]["count"] == "4"
    assert (rows[0]["phase"], rows[0]["code"], rows[0]["type"], rows[0]["name"]) == ("rcpt", "550", "SMTP", "send")
    assert "no such user" in rows[0]["example"]
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert kinds == ["run_started", "run_stopped"]  # Locust's totals agreed: no count_mismatch


def test_a_count_that_disagrees_with_locust_is_an_event(tmp_path):
    locust = environment()
    run = RunRecorder(locust, tmp_path, RequestRecorder()).start(ticking=False)
    fire(locust.events.request.fire, 3)
    run.stop(locust_total=locust_total(1, 0))
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["run_started", "count_mismatch", "run_stopped"]
    assert "loadkit counted 3" in events[1]["detail"] and "Locust 1" in events[1]["detail"]


def test_workers_reports_merge_per_interval_on_the_master(tmp_path):
    master = RunRecorder(environment(users=6), tmp_path, settle=5.0).start(ticking=False)
    start = master.current_start
    workers = {"w1": WorkerReporter(environment()), "w2": WorkerReporter(environment())}
    for reporter in workers.values():
        reporter.current_start = start

    def report(worker):
        payload = workers[worker].payload()
        if payload is not None:
            master.add_worker_report(worker, json.loads(json.dumps(payload)))  # as it travels

    fire(workers["w1"].recorder.on_request, 30, phases=SESSION)
    fire(workers["w2"].recorder.on_request, 20, response_time=8.0)
    report("w1")  # mid-interval: the first part of [start, start+1)
    fire(workers["w1"].recorder.on_request, 5, exception=unknown_user())
    for reporter in workers.values():
        reporter.tick(start + 1)
    fire(workers["w2"].recorder.on_request, 11)
    for reporter in workers.values():
        reporter.tick(start + 2)
    report("w1")
    report("w2")
    master.tick(start + 1)  # within the settle time: nothing written yet
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    facts = master.stop()

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["start"] for line in lines] == [start, start + 1]
    first = {(s["kind"], s["name"]): s for s in lines[0]["series"]}
    assert (first[("request", "send")]["ok"], first[("request", "send")]["failed"]) == (50, 5)
    assert first[("phase", "connect")]["ok"] == 30
    second = {(s["kind"], s["name"]): s for s in lines[1]["series"]}
    assert second[("request", "send")]["ok"] == 11
    merged = Series.from_json(first[("request", "send")])
    assert (merged.histogram.total_count, merged.failed_histogram.total_count) == (50, 5)
    assert facts["worker_shares"] == {"w1": 35, "w2": 31} and facts["workers"] == 2
    assert facts["recorded_requests"] == 66
    with open(tmp_path / "errors.csv", newline="") as handle:
        assert [row["count"] for row in csv.DictReader(handle)] == ["5"]


def test_late_data_goes_to_the_oldest_open_interval(tmp_path):
    out = open(tmp_path / "metrics.jsonl", "w")
    store = IntervalStore(out, settle=2.0)

    def one(ok):
        return [Series("request", "SMTP", "send", ok=ok)]

    store.add(100.0, 101.0, one(1))
    store.add(101.0, 102.0, one(2))
    assert store.flush(now=102.5) == 0
    assert store.flush(now=103.0) == 1  # [100, 101) has settled
    store.add(100.0, 101.0, one(4))  # a report that comes too late for its interval
    assert store.late == 1
    store.flush()
    out.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(line["start"], line["series"][0]["ok"]) for line in lines] == [(100.0, 1), (101.0, 6)]
    assert store.totals.requests() == (7, 0)


def test_a_worker_cpu_warning_reaches_events_jsonl_with_the_worker(tmp_path):
    master = RunRecorder(environment(), tmp_path, settle=5.0).start(ticking=False)
    worker = WorkerReporter(environment())
    worker.on_cpu_warning(environment=None, cpu_usage=97.3)  # Locust's cpu_warning event, above 90%
    master.add_worker_report("w1", json.loads(json.dumps(worker.payload())))
    assert worker.payload() is None  # sent once
    # the one source a master's rate verdict reads to call a shortfall generator-limited
    assert master.events.counts.get("generator_cpu_high") == 1
    master.stop()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    (cpu,) = [e for e in events if e["kind"] == "generator_cpu_high"]
    assert cpu["worker"] == "w1" and "97%" in cpu["detail"]


def test_a_recorder_loads_numpy_before_the_load_not_at_its_first_tick():
    """Imported by the first fold, numpy (60-200 ms) stalled every user of the process inside the run's
    first second; importing the recorder alone still leaves it out (`loadkit source` folds no histogram)."""
    code = ("import sys\n"
            "from loadkit.metrics._recorder import RequestRecorder\n"
            "print('numpy' in sys.modules)\n"
            "RequestRecorder()\n"
            "print('numpy' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
