"""Thresholds measured from each source a run may leave, with the values known: Locust's CSV and JSON,
loadkit's folder (duration, integrity details), and what is written from the verdicts (table, JSON, JUnit, exit code)."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest

from loadkit.hdr import record_ms
from loadkit.metrics._intervals import IntervalStore
from loadkit.metrics._series import Series
from loadkit.thresholds import (
    EXIT_FAILED,
    ThresholdError,
    Verdict,
    all_passed,
    as_dicts,
    evaluate,
    evaluate_with_notes,
    exit_code,
    format_table,
    read_verdicts,
    write_json,
    write_junit,
    write_verdicts,
)

HEADER = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
          "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%")
ROWS = (
    "SMTP,send,200,10,40,45.5,2,900,5120,20.0,1.0,40,50,60,70,80,95,120,300,800,900,900",
    "SMTP,auth,50,0,5,5.0,4,6,0,5.0,0.0,5,5,5,5,6,6,6,6,6,6,6",
    "HTTP,send,7,0,9,9.0,9,9,0,0.7,0.0,9,9,9,9,9,9,9,9,9,9,9",
    ",Aggregated,257,10,30,36.4,2,900,3985,25.7,1.0,30,40,50,60,70,90,110,250,800,900,900",
)


def locust_csv(folder, rows=ROWS):
    (folder / "locust_stats.csv").write_text("\n".join((HEADER, *rows)) + "\n")
    return folder


def by_expression(verdicts):
    return {v.expression: v for v in verdicts}


@pytest.mark.parametrize("expression, measured", [
    ("requests==257", 257.0), ("failures==10", 10.0), ("fail_ratio<0.04", 10 / 257), ("rps>25", 25.7),
    ("min>=2", 2.0), ("max<=900", 900.0), ("avg<37", 36.4), ("median<=30", 30.0), ("p50<=30", 30.0),
    ("p95<=90", 90.0), ("p99<=250", 250.0), ("p99.9<=800", 800.0), ("p100<=900", 900.0),
    ("auth:requests==50", 50.0), ("auth:p95<=6", 6.0), ("auth:fail_ratio==0", 0.0), ("HTTP:requests==7", 7.0),
])
def test_locust_csv_values_are_read_from_their_columns(tmp_path, expression, measured):
    (verdict,) = evaluate(locust_csv(tmp_path), [expression])
    assert verdict.status == "passed", verdict
    assert verdict.measured == pytest.approx(measured) and verdict.source == "locust_stats.csv"


@pytest.mark.parametrize("expression, error", [
    ("send:p95<1", "never measured: several request named 'send' in locust_stats.csv"),
    ("nothing:p95<1", "never measured: no request named 'nothing' in locust_stats.csv"),
    ("phase.rcpt:p99<1", "never measured: phases are only in metrics.jsonl"),
    ("p97<1", "locust_stats.csv has no value for p97 (column 97%)"),
    ("failed.p95<1", "never measured: failed requests' own times are only in metrics.jsonl"),
    ("dropped==0", "never measured: not an open-model run (--rate)"),
])
def test_what_locust_csv_cannot_say_is_an_error(tmp_path, expression, error):
    (verdict,) = evaluate(locust_csv(tmp_path), [expression])
    assert (verdict.status, verdict.error, verdict.measured, verdict.passed) == ("error", error, None, False)


def test_a_locust_csv_scope_without_requests_has_no_fail_ratio(tmp_path):
    rows = (*ROWS, "SMTP,idle,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0")
    (verdict,) = evaluate(locust_csv(tmp_path, rows), ["idle:fail_ratio<1"])
    assert verdict.error == "never measured: request named 'idle' has no requests"


def test_a_locust_csv_prefix_and_an_empty_cell(tmp_path):
    rows = (",Aggregated,5,0,,1.0,1,2,0,1.0,0.0,1,1,1,1,1,1,1,1,1,1,1",)
    (tmp_path / "run1_stats.csv").write_text("\n".join((HEADER, *rows)) + "\n")
    median, requests = evaluate(tmp_path / "run1", ["median<1", "requests==5"])
    assert median.error == "run1_stats.csv has no value for median (column Median Response Time)"
    assert requests.passed and requests.source == "run1_stats.csv"


def locust_json(path, entries):
    path.write_text(json.dumps(entries))
    return path


def entry(name, method="SMTP", requests=100, failures=0, times=None, start=1000.0, last=1010.0):
    return {"name": name, "method": method, "num_requests": requests, "num_failures": failures,
            "response_times": times if times is not None else {"10": requests}, "start_time": start,
            "last_request_timestamp": last}


def test_locust_json_counts_times_and_rate(tmp_path):
    path = locust_json(tmp_path / "stats.json", [
        entry("send", requests=90, failures=9, times={"10": 80, "20.4": 9, "500": 1}, start=1000.0, last=1009.0),
        entry("auth", requests=10, times={"3": 10}, start=1001.0, last=1010.0),
    ])
    verdicts = by_expression(evaluate(path, [
        "requests==100", "failures==9", "send:fail_ratio==0.1", "auth:requests==10", "rps==10", "send:rps==9",
        "send:max<=501", "auth:p99<=3.01", "p50<=10.01", "min>=3"]))
    assert {k: v.status for k, v in verdicts.items()} == dict.fromkeys(verdicts, "passed"), verdicts
    assert verdicts["send:max<=501"].measured == pytest.approx(500, rel=0.001)
    assert verdicts["min>=3"].measured == pytest.approx(3, rel=0.001)
    assert verdicts["rps==10"].measured == 10.0 and verdicts["requests==100"].source == "stats.json"


def test_locust_json_phases_failed_times_and_damaged_entries(tmp_path):
    path = locust_json(tmp_path / "stats.json", [
        entry("send", requests=3, failures=-1, times={"bad": 1, "7": "x", "4": 3}, start=0, last=0),
        entry("other", requests="many", times=[], start=None, last=None),
    ])
    verdicts = by_expression(evaluate(path, ["send:requests==3", "send:failures==0", "send:max<=4.01", "rps>0",
                                             "phase.rcpt:p99<1", "failed.p95<1", "other:requests==0", "other:p95<1"]))
    assert verdicts["send:requests==3"].passed and verdicts["send:failures==0"].passed
    assert verdicts["send:max<=4.01"].measured == pytest.approx(4, rel=0.001)
    assert verdicts["rps>0"].error == "the run's duration is unknown (run.json has no started_at/stopped_at)"
    assert verdicts["phase.rcpt:p99<1"].error == "never measured: phases are only in metrics.jsonl"
    assert verdicts["failed.p95<1"].error == "never measured: failed requests' own times are only in metrics.jsonl"
    assert verdicts["other:requests==0"].passed
    assert verdicts["other:p95<1"].error == "never measured: request named 'other' has no latency samples"


def test_a_file_that_is_not_locust_json_is_one_line(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text('{"not": "a list"}')
    with pytest.raises(ThresholdError, match="is not Locust's JSON stats") as raised:
        evaluate(path, ["p95<1"])
    assert "\n" not in str(raised.value)
    with pytest.raises(ThresholdError, match="no such results folder"):
        evaluate(tmp_path / "nowhere", ["p95<1"])


def metrics_folder(folder, started=1000.0, stopped=1010.0, events=(), run=True, interval=(1000.0, 1004.0)):
    """'send': 100 accepted at 1..100 ms, 4 failed, in one interval; run.json and events.jsonl as asked."""
    send = Series("request", "SMTP", "send", ok=100, failed=4, errors={"421 at DATA": 4})
    record_ms(send.histogram, [float(ms) for ms in range(1, 101)])
    with open(folder / "metrics.jsonl", "w") as out:
        store = IntervalStore(out)
        store.add(*interval, [send])
        store.flush()
    if run:
        (folder / "run.json").write_text(json.dumps({"started_at": started, "stopped_at": stopped}))
    lines = [{"time": started, "kind": "run_started", "worker": None, "detail": ""}, *events,
             {"time": stopped, "kind": "run_stopped", "worker": None, "detail": ""}]
    (folder / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in lines))
    return folder


@pytest.mark.parametrize("started, stopped, rps", [
    (1000.0, 1010.0, 10.4),  # from run.json
    (1000.0, 1000.0, 26.0),  # run.json's times say nothing: the intervals' span, 4 s
    (None, 1010.0, 26.0),
])
def test_rps_is_over_the_runs_duration_or_else_its_intervals(tmp_path, started, stopped, rps):
    folder = metrics_folder(tmp_path, started=started or 1000.0, stopped=stopped)
    if started is None:
        (folder / "run.json").write_text(json.dumps({"stopped_at": stopped}))
    (verdict,) = evaluate(folder, ["rps>1"])
    assert verdict.measured == pytest.approx(rps)


def test_summary_times_of_a_folder(tmp_path):
    verdicts = by_expression(evaluate(metrics_folder(tmp_path), ["min<1.01", "max>99.9", "avg<50.6", "median<=50.1",
                                                                 "p100<=100.1", "fail_ratio<0.04"]))
    assert all(v.passed for v in verdicts.values()), verdicts
    assert verdicts["avg<50.6"].measured == pytest.approx(50.5, rel=0.001)
    assert verdicts["min<1.01"].measured == pytest.approx(1.0, rel=0.001)
    assert verdicts["fail_ratio<0.04"].measured == pytest.approx(4 / 104)


def test_a_scope_with_requests_but_no_times(tmp_path):
    folder = metrics_folder(tmp_path)
    quiet = Series("request", "SMTP", "quiet", ok=0, failed=0)
    with open(folder / "metrics.jsonl", "a") as out:
        store = IntervalStore(out)
        store.add(1004.0, 1005.0, [quiet])
        store.flush()
    fail_ratio, p95, requests = evaluate(folder, ["quiet:fail_ratio<1", "quiet:p95<1", "quiet:requests==0"])
    assert fail_ratio.error == "never measured: request named 'quiet' has no requests"
    assert p95.error == "never measured: request named 'quiet' has no latency samples"
    assert requests.passed and requests.measured == 0


WORKER_LOST = [{"time": 1000.0 + i, "kind": "worker_lost", "worker": f"w{i}", "detail": f"silent {i} s"} for i in range(5)]


def test_an_integrity_check_says_what_it_found(tmp_path):
    folder = metrics_folder(tmp_path, events=WORKER_LOST[:2])
    (verdict,) = evaluate(folder, ["no_worker_lost"])
    assert (verdict.status, verdict.measured, verdict.limit) == ("failed", 2.0, 0.0)
    assert verdict.detail == "worker_lost on w0: silent 0 s; worker_lost on w1: silent 1 s"


def test_an_integrity_detail_shows_three_and_counts_the_rest(tmp_path):
    events = [*WORKER_LOST, {"time": 1006.0, "kind": "final_report_missing", "worker": None, "detail": ""}]
    (verdict,) = evaluate(metrics_folder(tmp_path, events=events), ["no_worker_lost"])
    assert verdict.measured == 6.0
    assert verdict.detail == "worker_lost on w0: silent 0 s; worker_lost on w1: silent 1 s; worker_lost on w2: silent 2 s; 3 more"


def test_a_passed_check_has_no_detail_and_other_checks_count_their_own_kinds(tmp_path):
    events = [{"time": 1002.0, "kind": "worker_missing", "worker": "w9", "detail": ""}]
    lost, missing = evaluate(metrics_folder(tmp_path, events=events), ["no_worker_lost", "no_worker_missing"])
    assert (lost.passed, lost.measured, lost.detail) == (True, 0.0, "")
    assert (missing.passed, missing.measured, missing.detail) == (False, 1.0, "worker_missing on w9")


def test_a_run_that_never_finished_fails_run_complete_whatever_was_asked(tmp_path):
    folder = metrics_folder(tmp_path, run=False)
    verdicts = by_expression(evaluate(folder, ["requests==104"]))
    assert verdicts["requests==104"].passed
    incomplete = verdicts["run_complete"]
    assert (incomplete.status, incomplete.measured) == ("failed", 1.0) and incomplete.detail
    (asked,) = evaluate(folder, ["run_complete"])
    assert asked.status == "failed" and asked.detail == incomplete.detail


def test_notes_say_what_the_readers_skipped(tmp_path):
    folder = metrics_folder(tmp_path)
    with open(folder / "metrics.jsonl", "a") as out:
        out.write("{not json\n")
    verdicts, notes = evaluate_with_notes(folder, ["requests==104"])
    assert verdicts[0].passed and len(notes) == 1 and "metrics.jsonl" in notes[0]
    assert f"note: {notes[0]}" in format_table(verdicts, notes)


def verdicts_of_each_status():
    return [
        Verdict("p95<1s", 950.5, 1000.0, True, "ms", source="metrics.jsonl"),
        Verdict("requests>=10", 3.0, 10.0, False, "", source="metrics.jsonl"),
        Verdict("no_worker_lost", 1.0, 0.0, False, "", detail="worker_lost on w1: gone"),
        Verdict("nothing:p95<1", None, 1.0, False, "ms", error="never measured: no request named 'nothing'"),
    ]


def test_the_table_lines_up_and_says_why():
    assert format_table(verdicts_of_each_status()).splitlines() == [
        "        threshold       measured  limit",
        "PASSED  p95<1s          950.5 ms  1000 ms",
        "FAILED  requests>=10    3         10",
        "FAILED  no_worker_lost  1         0",
        "ERROR   nothing:p95<1   -         1 ms",
        "no_worker_lost: worker_lost on w1: gone",
        "nothing:p95<1: never measured: no request named 'nothing'",
        "thresholds: 1 of 4 passed",
    ]


@pytest.mark.parametrize("value, unit, text", [
    (1000.0, "ms", "1000 ms"), (0.5, "ms", "0.5 ms"), (3.0, "", "3"), (1 / 3, "", "0.333333"), (7, "req/s", "7 req/s"),
    (123456789.5, "", "1.23457e+08"),
])
def test_numbers_are_shown_short_with_their_unit(value, unit, text):
    verdict = Verdict("x", value, value, True, unit)
    assert verdict.measured_text == verdict.limit_text == text


def test_status_exit_code_and_all_passed():
    passed, failed, lost, error = verdicts_of_each_status()
    assert (passed.status, failed.status, lost.status, error.status) == ("passed", "failed", "failed", "error")
    assert Verdict("x", None, None, True).measured_text == "-" == Verdict("x", None, None, True).limit_text
    assert all_passed([passed]) and exit_code([passed]) == 0
    assert not all_passed([passed, failed]) and exit_code([passed, failed]) == EXIT_FAILED == 3
    assert exit_code([error]) == 3 and all_passed([]) and exit_code([]) == 0


def test_junit_and_json_say_each_verdict(tmp_path):
    verdicts = verdicts_of_each_status()
    junit = write_junit(verdicts, tmp_path / "out.xml", suite="a suite")
    root = ElementTree.parse(junit).getroot()
    suite = root.find("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("a suite", "4", "2", "1")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [v.expression for v in verdicts]
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    assert cases[1].find("failure").get("message") == "measured 3, limit 10"
    assert cases[2].find("failure").get("message") == "measured 1, limit 0: worker_lost on w1: gone"
    assert cases[3].find("error").get("message") == "never measured: no request named 'nothing'"

    path = write_json(verdicts, tmp_path / "verdicts.json", ["a note"])
    data = json.loads(path.read_text())
    assert data["passed"] is False and data["notes"] == ["a note"]
    assert data["verdicts"] == as_dicts(verdicts)
    assert as_dicts(verdicts)[3] == {"expression": "nothing:p95<1", "measured": None, "limit": 1.0, "passed": False,
                                     "unit": "ms", "error": "never measured: no request named 'nothing'", "source": "",
                                     "detail": "", "status": "error"}


def test_a_folder_keeps_its_verdicts(tmp_path):
    verdicts = verdicts_of_each_status()
    json_path, junit_path = write_verdicts(tmp_path, verdicts, ["a note"])
    assert (json_path.name, junit_path.name) == ("verdicts.json", "junit.xml")
    assert ElementTree.parse(junit_path).getroot().find("testsuite").get("name") == "loadkit thresholds"
    assert json.loads(json_path.read_text())["notes"] == ["a note"]
    assert read_verdicts(tmp_path) == verdicts
    assert read_verdicts(tmp_path / "empty") == []


def test_metrics_lines_as_written_by_hand_in_any_order(tmp_path):
    """Intervals out of order, one without an end (taken as one second), one without series, series without counts."""
    lines = [
        {"start": 1006.0, "end": 1010.0, "series": [{"kind": "request", "type": "SMTP", "name": "send", "ok": 30,
                                                      "failed": 6}]},
        {"start": 1000.0, "series": [{"kind": "request", "type": "SMTP", "name": "send", "ok": 10},
                                     {"kind": "request", "type": "SMTP", "name": "auth", "failed": 4},
                                     {"kind": "open", "name": "dropped", "ok": 3}, {"kind": "open", "name": "sent"}]},
        {"start": 1003.0, "end": 1004.0},
        {"start": 1002.0, "end": 1003.0, "series": [{"kind": "open", "name": "dropped", "ok": 2},
                                                     {"kind": "open", "name": "dropped"}]},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    asked = ["requests==50", "failures==10", "send:requests==46", "auth:failures==4", "rps==5", "dropped==5"]
    verdicts = by_expression(evaluate(tmp_path, asked))
    assert {k: verdicts[k].status for k in asked} == dict.fromkeys(asked, "passed"), verdicts
    assert verdicts["rps==5"].measured == 5.0  # 50 requests from 1000 to 1010, no run.json
    assert by_expression(evaluate(tmp_path, ["SMTP:requests==50"]))["SMTP:requests==50"].passed  # by type


def test_an_interval_without_an_end_lasts_one_second(tmp_path):
    line = {"start": 1000.0, "series": [{"kind": "request", "type": "SMTP", "name": "send", "ok": 8, "failed": 0}]}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    verdict = by_expression(evaluate(tmp_path, ["rps==8"]))["rps==8"]
    assert verdict.passed and verdict.measured == 8.0


def test_locust_json_scopes_by_type_and_the_shortest_times(tmp_path):
    path = locust_json(tmp_path / "stats.json", [
        entry("send", method="SMTP", requests=6, times={"0": 2, "0.0004": 4}),
        entry("page", method="GET", requests=5, start=1002.0, last=None),
    ])
    smtp, get, minimum, rps = evaluate(path, ["SMTP:requests==6", "GET:requests==5", "min<1", "rps>0"])
    assert smtp.passed and get.passed
    assert minimum.measured == pytest.approx(0.001, rel=0.01)  # under 1 µs counts as 1 µs, Locust's 0 ms included
    assert rps.measured == pytest.approx(11 / 10)  # the span of the entries with both times


def test_notes_of_end_to_end_latency(tmp_path):
    from tests.unit.test_thresholds_e2e import COUNTS, finished_folder

    folder = finished_folder(tmp_path, (), {**COUNTS, "delivered": 0})
    verdicts, notes = evaluate_with_notes(folder, ["e2e.p99<1s"])
    assert "nothing delivered" in verdicts[0].error and notes == []
    from loadkit.results import write_e2e

    write_e2e(folder, {**COUNTS, "latency_histogram": "not a histogram"})
    verdicts, notes = evaluate_with_notes(folder, ["e2e.p99<1s"])
    assert "nothing delivered" in verdicts[0].error and notes == ["e2e.json: latency histogram does not decode"]


def test_a_median_is_the_50th_percentile(tmp_path):
    from tests.unit.test_thresholds_e2e import COUNTS, finished_folder

    folder = finished_folder(tmp_path, [40.0] * 50 + [300.0] * 50, COUNTS)
    median, p50, p51 = evaluate(folder, ["e2e.median<1s", "e2e.p50<1s", "e2e.p51<1s"])
    assert median.measured == p50.measured == pytest.approx(40.0, rel=0.002)
    assert p51.measured == pytest.approx(300.0, rel=0.002)


def test_integrity_details_without_a_worker_or_a_detail(tmp_path):
    events = [{"time": 1001.0, "kind": "worker_lost", "worker": None, "detail": "heartbeats stopped"},
              {"time": 1002.0, "kind": "worker_lost", "worker": "w1"}]
    (verdict,) = evaluate(metrics_folder(tmp_path, events=events), ["no_worker_lost"])
    assert verdict.detail == "worker_lost: heartbeats stopped; worker_lost on w1"


def test_whole_numbers_are_shown_whole():
    assert Verdict("x", 123456789.0, 2.0, True).measured_text == "123456789"


def test_a_passed_case_says_what_was_measured(tmp_path):
    junit = write_junit(verdicts_of_each_status(), tmp_path / "out.xml")
    case = ElementTree.parse(junit).getroot().find("testsuite").find("testcase")
    assert case.find("system-out").text == "measured 950.5 ms"


def test_damaged_verdicts_read_as_none(tmp_path):
    (tmp_path / "verdicts.json").write_text("{not json")
    assert read_verdicts(tmp_path) == []


def test_a_series_without_a_kind_is_of_requests(tmp_path):
    line = {"start": 1000.0, "end": 1002.0, "series": [{"type": "SMTP", "name": "send", "ok": 4, "failed": 1}]}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    requests, failures = evaluate(tmp_path, ["send:requests==5", "failures==1"])[:2]
    assert requests.passed and failures.passed


def test_a_run_killed_before_its_first_interval_is_read_from_locust_csv(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    locust_csv(tmp_path)
    verdicts = by_expression(evaluate(tmp_path, ["requests==257"]))
    assert verdicts["requests==257"].passed and verdicts["requests==257"].source == "locust_stats.csv"


def test_locust_json_one_request_one_failure(tmp_path):
    path = locust_json(tmp_path / "stats.json", [entry("send", requests=1, failures=1, times={"5": 1})])
    requests, failures = evaluate(path, ["requests==1", "failures==1"])
    assert requests.passed and failures.passed


def test_a_request_named_aggregated_is_not_the_total(tmp_path):
    rows = ("SMTP,Aggregated,3,0,1,1.0,1,1,0,0.3,0.0,1,1,1,1,1,1,1,1,1,1,1", *ROWS)
    total, named = evaluate(locust_csv(tmp_path, rows), ["requests==257", "Aggregated:requests==3"])
    assert total.passed and named.passed


def test_a_damaged_locust_csv_row_is_skipped_and_said(tmp_path):
    rows = (*ROWS, "SMTP,extra,1,0,1,1,1,1,0,0.1,0.0,1,1,1,1,1,1,1,1,1,1,1,1,1,1")
    verdicts, notes = evaluate_with_notes(locust_csv(tmp_path, rows), ["requests==257", "extra:requests==1"])
    assert verdicts[0].passed and verdicts[1].status == "error"
    assert len(notes) == 1 and "locust_stats.csv" in notes[0]


def test_an_unreadable_locust_csv_is_said_once(tmp_path):
    (tmp_path / "locust_stats.csv").write_bytes(HEADER.encode() + b"\nSMTP,send,\xff\xfe\n")
    verdicts, notes = evaluate_with_notes(tmp_path, ["requests==1"])
    assert verdicts[0].error == f"no readable locust_stats.csv for {tmp_path / 'locust'}"
    assert len(notes) == 1 and notes[0].startswith("cannot read ") and "locust_stats.csv" in notes[0]


def test_a_phase_scope_counts_the_phase_not_a_request_named_like_it(tmp_path):
    line = {"start": 1000.0, "end": 1001.0, "series": [
        {"kind": "request", "type": "SMTP", "name": "phase.rcpt", "ok": 7, "failed": 0},
        {"kind": "phase", "type": "SMTP", "name": "rcpt", "ok": 3, "failed": 0}]}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    verdict = by_expression(evaluate(tmp_path, ["phase.rcpt:requests==3"]))["phase.rcpt:requests==3"]
    assert verdict.passed and verdict.measured == 3


def test_damaged_files_are_said_in_the_notes(tmp_path):
    from tests.unit.test_thresholds_e2e import COUNTS, finished_folder

    folder = finished_folder(tmp_path, [40.0], COUNTS, queue=[0, 1])
    (folder / "run.json").write_text("{damaged")
    (folder / "e2e.json").write_text("{damaged")
    with open(folder / "probes.jsonl", "a") as out:
        out.write("{damaged\n")
    with open(folder / "events.jsonl", "w") as out:  # never stopped, one line damaged
        out.write(json.dumps({"time": 100.0, "kind": "run_started", "worker": None, "detail": ""}) + "\n{damaged\n")
    verdicts, notes = evaluate_with_notes(folder, ["rps>1", "e2e.lost==0", "queue_max<=1", "run_complete"])
    verdicts = by_expression(verdicts)
    assert verdicts["rps>1"].measured == pytest.approx(10.0)  # no readable run.json: the intervals' span
    assert "no readable e2e.json" in verdicts["e2e.lost==0"].error
    assert verdicts["queue_max<=1"].passed and verdicts["queue_max<=1"].measured == 1
    assert verdicts["run_complete"].detail.startswith("no run_stopped event in events.jsonl (1 damaged lines): ")
    for name in ("run.json", "e2e.json", "probes.jsonl", "events.jsonl"):
        assert any(name in note for note in notes), (name, notes)


@pytest.mark.parametrize("lost, detail", [
    (3, "worker_lost on w0: silent 0 s; worker_lost on w1: silent 1 s; worker_lost on w2: silent 2 s"),
    (4, "worker_lost on w0: silent 0 s; worker_lost on w1: silent 1 s; worker_lost on w2: silent 2 s; 1 more"),
])
def test_three_events_are_shown_whole(tmp_path, lost, detail):
    (verdict,) = evaluate(metrics_folder(tmp_path, events=WORKER_LOST[:lost]), ["no_worker_lost"])
    assert verdict.detail == detail


def test_a_failed_measure_has_no_detail(tmp_path):
    (verdict,) = evaluate(metrics_folder(tmp_path), ["p95<1"])
    assert verdict.status == "failed" and verdict.detail == ""


def test_an_open_model_run_that_dropped_nothing(tmp_path):
    line = {"start": 1000.0, "end": 1001.0, "series": [{"kind": "open", "name": "offered", "ok": 5},
                                                         {"kind": "open", "name": "sent", "ok": 5}]}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    verdict = by_expression(evaluate(tmp_path, ["dropped==0"]))["dropped==0"]
    assert verdict.passed and verdict.measured == 0


def test_a_folder_of_phases_alone_has_no_requests(tmp_path):
    line = {"start": 1000.0, "end": 1001.0, "series": [{"kind": "phase", "type": "SMTP", "name": "rcpt", "ok": 5}]}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    verdict = by_expression(evaluate(tmp_path, ["p95<1"]))["p95<1"]
    assert verdict.error == "never measured: no requests in metrics.jsonl"


def test_a_nan_in_locust_csv_is_no_value(tmp_path):
    rows = (",Aggregated,5,0,1,1.0,1,2,0,1.0,0.0,1,1,1,1,1,nan,1,1,1,1,1",)
    (verdict,) = evaluate(locust_csv(tmp_path, rows), ["p95<1"])
    assert verdict.error == "locust_stats.csv has no value for p95 (column 95%)"
