"""The Mail tab's numbers: read from metrics.jsonl as it grows, merged like the run merges them.

`LiveRun` follows a results folder's metrics.jsonl (written by the run's
recorder) and adds intervals not written yet on copies; `build_state` and
`table_rows` turn that into the tab's rows: phases in protocol order,
replies by code and phase, rates, the workers, and an alert first when
every transaction failed.
"""

from __future__ import annotations

import json

from loadkit.hdr import record_ms
from loadkit.metrics._intervals import Interval
from loadkit.metrics._series import PHASE, REQUEST, Series
from loadkit.thresholds import parse_all
from loadkit.webui._console import build_state, json_for_html, table_rows, threshold_lines
from loadkit.webui._live import LiveRun, reply_of
from loadkit.webui._page import PAGE
from loadkit.webui._workers import WorkerShares


def series(kind, name, times_ms, failed=0, errors=None, bytes_=0, type_="SMTP") -> Series:
    one = Series(kind, type_, name, ok=len(times_ms), failed=failed, bytes_=bytes_, errors=errors or {})
    record_ms(one.histogram, times_ms)
    return one


def interval(start, *all_series) -> dict:
    return {"start": start, "end": start + 1.0, "series": [one.to_json() for one in all_series]}


def write_lines(folder, *intervals, partial: str = "") -> None:
    with open(folder / "metrics.jsonl", "a") as out:
        for one in intervals:
            out.write(json.dumps(one) + "\n")
        out.write(partial)


def second(start, sends_ms, rcpt_failures=0):
    """One second of a run: the sends, and their phases (quit first: the state sorts them)."""
    return interval(
        start,
        series(REQUEST, "send", sends_ms, failed=rcpt_failures, bytes_=1000 * len(sends_ms),
               errors={"550 5.3.0 at RCPT": rcpt_failures} if rcpt_failures else None),
        series(PHASE, "quit", [0.05] * len(sends_ms)),
        series(PHASE, "connect", [0.2] * len(sends_ms)),
        series(PHASE, "rcpt", [], failed=rcpt_failures, errors={"550 5.3.0 at RCPT": rcpt_failures} if rcpt_failures else None),
        series(PHASE, "end-of-data", [1.0] * len(sends_ms)),
    )


def test_totals_grow_with_the_file_and_a_partial_line_waits(tmp_path):
    write_lines(tmp_path, second(100.0, [2.0, 4.0]), partial='{"start": 101.0, "en')
    live = LiveRun(tmp_path)
    totals, timeline = live.snapshot()
    assert totals[(REQUEST, "SMTP", "send")].ok == 2
    assert len(timeline) == 1
    (tmp_path / "metrics.jsonl").write_text((tmp_path / "metrics.jsonl").read_text().rsplit("\n", 1)[0] + "\n")
    write_lines(tmp_path, second(101.0, [3.0], rcpt_failures=1))
    totals, timeline = live.snapshot()
    send = totals[(REQUEST, "SMTP", "send")]
    assert (send.ok, send.failed, send.bytes) == (3, 1, 3000)
    assert send.errors == {"550 5.3.0 at RCPT": 1}
    assert [point["time"] for point in timeline] == [100.0, 101.0]
    assert send.percentiles_us([50.0, 100.0]) == [3001.0, 4001.0]  # the highest µs of the buckets of 3 ms and 4 ms


def test_open_intervals_count_in_the_snapshot_but_not_in_the_totals(tmp_path):
    write_lines(tmp_path, second(100.0, [2.0]))
    live = LiveRun(tmp_path)
    still_open = Interval(101.0, 102.0)
    still_open.add(series(REQUEST, "send", [5.0, 6.0]))
    totals, timeline = live.snapshot([still_open])
    assert totals[(REQUEST, "SMTP", "send")].ok == 3
    assert len(timeline) == 2
    totals, timeline = live.snapshot()
    assert totals[(REQUEST, "SMTP", "send")].ok == 1
    assert len(timeline) == 1


def test_a_new_folder_starts_from_nothing(tmp_path):
    first, other = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    other.mkdir()
    write_lines(first, second(100.0, [2.0]))
    live = LiveRun(first)
    live.snapshot()
    live.follow(other)
    totals, timeline = live.snapshot()
    assert (totals, timeline) == ({}, [])


def test_phases_in_protocol_order_and_replies_by_code_and_phase(tmp_path):
    write_lines(tmp_path, second(100.0, [2.0, 2.0, 2.0], rcpt_failures=1))
    totals, timeline = LiveRun(tmp_path).snapshot()
    state = build_state(totals, timeline, now=200.0)
    assert [row["phase"] for row in state["phases"]] == ["connect", "rcpt", "end-of-data", "quit"]
    assert [(row["code"], row["phase"], row["count"]) for row in state["replies"]] == [
        ("2xx", "end-of-data", 3), ("550", "rcpt", 1)]
    assert state["alert"] is None
    assert state["rates"]["sessions"]["total"] == 3
    assert state["rates"]["messages"]["total"] == 4
    assert state["rates"]["bytes"]["total"] == 3000
    rows = table_rows(state)
    assert [row["item"] for row in rows if row["section"] == "phase"] == ["connect", "rcpt", "end-of-data", "quit"]
    connect = next(row for row in rows if row["item"] == "connect")
    assert connect["p50"] == connect["max"] == 200  # µs


def test_a_run_whose_every_transaction_failed_says_so_first(tmp_path):
    write_lines(tmp_path, second(100.0, [], rcpt_failures=5))
    totals, timeline = LiveRun(tmp_path).snapshot()
    state = build_state(totals, timeline, now=200.0)
    assert state["alert"] == "every transaction failed: 5 of 5; most often 550 5.3.0 at RCPT (5)"
    first = table_rows(state)[0]
    assert (first["section"], first["detail"]) == ("ALERT", state["alert"])


def test_no_alert_before_any_transaction():
    state = build_state({}, [], now=1.0)
    assert state["alert"] is None
    assert table_rows(state)[0]["section"] == "rate"


def test_reply_of_reads_loadkit_error_keys():
    assert reply_of("550 5.3.0 at RCPT") == ("550", "rcpt")
    assert reply_of("421 at END-OF-DATA") == ("421", "end-of-data")
    assert reply_of("timed out at DATA") == ("timed out", "data")
    assert reply_of("ConnectionRefusedError(111)") == ("ConnectionRefusedError(111)", "")


def test_latency_thresholds_become_chart_lines():
    lines = threshold_lines(parse_all(["phase.rcpt:p99<20ms", "p95<250ms", "send:p99<1s", "fail_ratio<1%",
                                       "e2e.p99<500ms", "failed.p95<1s", "no_worker_lost"]))
    assert lines == [
        {"expression": "phase.rcpt:p99<20ms", "phase": "rcpt", "scope": None, "percentile": 99.0, "limit_ms": 20.0},
        {"expression": "p95<250ms", "phase": None, "scope": None, "percentile": 95.0, "limit_ms": 250.0},
        {"expression": "send:p99<1s", "phase": None, "scope": "send", "percentile": 99.0, "limit_ms": 1000.0},
    ]


def worker_report(start, sends_ms, failed=0) -> dict:
    return {"loadkit": {"intervals": [interval(start, series(REQUEST, "send", sends_ms, failed=failed),
                                               series(PHASE, "connect", [0.1]))]}}


def test_each_workers_share_rate_and_p99():
    clock = [120.0]
    shares = WorkerShares(clock=lambda: clock[0])
    for start in range(105, 119):
        shares.on_worker_report("w1", worker_report(float(start), [1.0] * (30 if start < 117 else 10)))
        shares.on_worker_report("w2", worker_report(float(start), [8.0] * 10, failed=2))
    # w1's last two seconds came in part so far (the rest rides on its next report): not in its rate yet
    shares.on_worker_report("w3", {"stats": []})  # a report without loadkit's numbers: no row
    rows = shares.rows()
    assert [row["worker"] for row in rows] == ["w1", "w2"]
    w1, w2 = rows
    assert (w1["requests"], w2["requests"], w2["failed"]) == (12 * 30 + 2 * 10, 14 * 12, 28)
    assert abs(w1["share"] + w2["share"] - 1.0) < 1e-9
    assert w1["rate"] == 30.0 and w2["rate"] == 12.0  # 10 seconds, 4 s back: reported whole
    assert w1["p99_us"] == 1000.0 and w2["p99_us"] == 8003.0
    shares.clear()
    assert shares.rows() == []


def test_a_servers_reply_text_reaches_the_page_as_text_never_as_markup(tmp_path):
    hostile = "550 <script>alert(1)</script> & <img src=x onerror=alert(2)> at RCPT"
    write_lines(tmp_path, second(100.0, [], rcpt_failures=0), interval(
        101.0, series(REQUEST, "send", [], failed=1, errors={hostile: 1})))
    totals, timeline = LiveRun(tmp_path).snapshot()
    state = build_state(totals, timeline, now=200.0)
    text = json_for_html({"state": state, "rows": table_rows(state)})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["state"]["replies"][0]["example"] == hostile  # the value itself is unchanged
    assert "innerHTML" not in PAGE and "insertAdjacentHTML" not in PAGE  # the page sets textContent only


def test_the_current_rate_leaves_out_seconds_still_open(tmp_path):
    write_lines(tmp_path, *(second(100.0 + n, [1.0] * 10) for n in range(5)))
    live = LiveRun(tmp_path)
    partial = Interval(105.0, 106.0)  # one worker of two has reported its share so far
    partial.add(series(REQUEST, "send", [1.0] * 4))
    totals, timeline = live.snapshot([partial])
    state = build_state(totals, timeline, now=200.0)
    assert state["rates"]["messages"]["current"] == 10.0
    assert state["rates"]["messages"]["total"] == 54
    assert timeline[-1]["open"] and not any(point.get("open") for point in timeline[:-1])


def test_a_masters_open_interval_of_merged_worker_reports_counts_in_the_snapshot(tmp_path):
    """On a master an open second holds workers' reports added as counts (`Interval.add_json`):
    the snapshot equals that of the same second written whole."""
    master, written = tmp_path / "master", tmp_path / "written"
    master.mkdir(), written.mkdir()
    write_lines(master, second(100.0, [2.0]))
    still_open = Interval(101.0, 102.0)
    for worker_sends in ([5.0, 6.0], [7.0]):
        one = series(REQUEST, "send", worker_sends)
        still_open.add_json(one.key, one.to_json())
    totals, timeline = LiveRun(master).snapshot([still_open])
    write_lines(written, second(100.0, [2.0]), interval(101.0, series(REQUEST, "send", [5.0, 6.0, 7.0])))
    expected, _ = LiveRun(written).snapshot()
    send, whole = totals[(REQUEST, "SMTP", "send")], expected[(REQUEST, "SMTP", "send")]
    assert send.ok == whole.ok == 4
    assert send.percentiles_us([50.0, 75.0, 100.0]) == whole.percentiles_us([50.0, 75.0, 100.0])
    assert len(timeline) == 2
