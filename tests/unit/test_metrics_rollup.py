"""metrics-minute.jsonl: each minute the exact merge of its intervals, and who reads it instead of metrics.jsonl.

The writer is the one that writes metrics.jsonl (`IntervalStore`, locally
with hdrh series, on a master with workers' JSON); each minute line is
checked against a merge of the metrics.jsonl lines it covers, made here
histogram by histogram. The readers (`loadkit report`, `loadkit check`)
take the minutes only for a long run whose minutes cover what metrics.jsonl
covers and read without damage; "long" is shortened here to ten minutes so
that a run of 25 minutes is one.
"""

from __future__ import annotations

import io
import json
import random
import shutil

import numpy as np
import pytest

from loadkit import hdr
from loadkit.metrics._intervals import IntervalStore
from loadkit.metrics._recorder import RequestRecorder
from loadkit.metrics._run import RunRecorder
from loadkit.metrics._series import REQUEST
from loadkit.report import load_run, read_metrics
from loadkit.report._html import render_page
from loadkit.results import (
    METRICS_FILE,
    MINUTES_FILE,
    Notes,
    open_events,
    open_metrics,
    open_minutes,
    read_minutes,
    write_event,
    write_run_json,
)
from loadkit.thresholds import evaluate, evaluate_with_notes, format_table

START = 1_795_652_160.0
CHECKS = ("p99<50ms", "send:p95<20ms", "phase.data:p99<10ms", "fail_ratio<1%", "requests>1000", "rps>5",
          "failed.p99<1s", "max<2s", "mean<30")
PHASES = ("connect", "data")


class Refused(Exception):
    code, phase = 550, "data"

    def __repr__(self) -> str:
        return "550 5.1.1 at RCPT"


class Greylisted(Exception):
    code, phase = 451, "data"

    def __repr__(self) -> str:
        return "451 4.7.1 at RCPT"


def one_second(rng: random.Random, messages: int) -> list:
    """The series of one second, as a local runner folds them (`RequestRecorder.fold`)."""
    recorder = RequestRecorder()
    for number in range(messages):
        phases = {phase: rng.lognormvariate(0.5, 0.8) for phase in PHASES}
        roll = rng.random()
        exception = Refused() if roll < 0.03 else Greylisted() if roll < 0.05 else None
        recorder.on_request("SMTP", ("send", "send-large")[number % 2], sum(phases.values()), 5120,
                            exception=exception, context={"phases": phases})
    return RequestRecorder.fold(recorder.take())


def record(store: IntervalStore, seconds: int, seed: int = 3, quiet=()) -> None:
    """`seconds` one-second intervals from START, each written at its tick; `quiet` seconds have users
    but no traffic; the last interval ends mid-second, as a stopped run's does."""
    rng = random.Random(seed)
    for second in range(seconds):
        start = START + second
        end = start + (0.4 if second == seconds - 1 else 1.0)
        if second not in quiet:
            store.add(start, end, one_second(rng, rng.randrange(1, 40)))
        store.set_users(start, end, 10 + second // 90)
        store.flush(end)
    store.flush()


def minute_of(line: dict) -> int:
    return int((line["start"] - START) // 60)


def merged_by_minute(lines: list[dict]) -> dict[int, dict]:
    """metrics.jsonl's lines summed per minute from the first start, decoded: what each minute line must hold."""
    minutes: dict[int, dict] = {}
    for line in lines:
        minute = minutes.setdefault(minute_of(line), {"start": line["start"], "end": line["end"], "series": {}})
        minute["end"] = max(minute["end"], line["end"])
        if "users" in line:
            minute["users"] = line["users"]
        for one in line["series"]:
            key = (one["kind"], one["type"], one["name"])
            sums = minute["series"].setdefault(key, {"ok": 0, "failed": 0, "bytes": 0, "errors": {},
                                                     "histogram": hdr.empty_counts(), "failed_histogram": hdr.empty_counts()})
            for count in ("ok", "failed", "bytes"):
                sums[count] += one[count]
            for error, count in one["errors"].items():
                sums["errors"][error] = sums["errors"].get(error, 0) + count
            for histogram in ("histogram", "failed_histogram"):
                if one.get(histogram):
                    sums[histogram] += hdr.decode_counts(one[histogram])
    return minutes


def assert_minutes_are_the_merge(metrics_text: str, minutes_text: str) -> list[dict]:
    lines = [json.loads(line) for line in metrics_text.splitlines()]
    minutes = [json.loads(line) for line in minutes_text.splitlines()]
    expected = merged_by_minute(lines)
    assert [minute_of(line) for line in minutes] == sorted(expected)  # one line a minute, in order
    for line in minutes:
        want = expected[minute_of(line)]
        assert (line["start"], line["end"], line.get("users")) == (want["start"], want["end"], want.get("users"))
        assert {(s["kind"], s["type"], s["name"]) for s in line["series"]} == set(want["series"])
        for one in line["series"]:
            sums = want["series"][(one["kind"], one["type"], one["name"])]
            assert (one["ok"], one["failed"], one["bytes"], one["errors"]) == \
                (sums["ok"], sums["failed"], sums["bytes"], sums["errors"])
            assert np.array_equal(hdr.decode_counts(one["histogram"]), sums["histogram"])
            failed = hdr.decode_counts(one["failed_histogram"]) if "failed_histogram" in one else hdr.empty_counts()
            assert np.array_equal(failed, sums["failed_histogram"])
    return minutes


# -- the writer ---------------------------------------------------------------------------------------


def test_each_minute_of_a_local_run_is_the_exact_merge_of_its_intervals():
    out, minutes_out = io.StringIO(), io.StringIO()
    record(IntervalStore(out, minutes_out=minutes_out), 200, quiet=range(100, 130))
    minutes = assert_minutes_are_the_merge(out.getvalue(), minutes_out.getvalue())
    assert len(minutes) == 4  # three whole minutes, and the last 20.4 s
    assert minutes[-1]["end"] == START + 199.4
    assert sum(s["ok"] + s["failed"] for line in minutes for s in line["series"] if s["kind"] == REQUEST) > 1000
    assert any("failed_histogram" in s for line in minutes for s in line["series"])


def test_a_master_s_minutes_are_the_exact_merge_of_what_its_workers_sent():
    rng = random.Random(8)
    out, minutes_out = io.StringIO(), io.StringIO()
    store = IntervalStore(out, settle=2.0, minutes_out=minutes_out)
    for second in range(130):
        for _worker in range(3):
            series = [one.to_json() for one in one_second(rng, rng.randrange(0, 15))]
            store.add_json(START + second, START + second + 1, series)
        store.flush(START + second + 1)
    # a worker cut off for a while: its seconds arrive after they were written, into the oldest open one
    store.add_json(START + 3, START + 4, [one.to_json() for one in one_second(rng, 20)])
    store.flush()
    assert store.late == 1
    assert_minutes_are_the_merge(out.getvalue(), minutes_out.getvalue())
    totals = sum(s["ok"] + s["failed"] for line in minutes_out.getvalue().splitlines()
                 for s in json.loads(line)["series"] if s["kind"] == REQUEST)
    assert totals == sum(store.totals.requests())


def test_what_a_master_has_merged_so_far_is_the_same_with_minutes_as_without():
    """The live view's numbers (`IntervalStore.merged`): with minutes, written seconds reach the run's
    merged series through their minute; at every moment the sum is the same."""
    rng = random.Random(4)
    with_minutes = IntervalStore(io.StringIO(), settle=2.0, minutes_out=io.StringIO())
    without = IntervalStore(io.StringIO(), settle=2.0)
    checked = 0
    for second in range(150):
        series = [one.to_json() for one in one_second(rng, rng.randrange(0, 25))]
        for store in (with_minutes, without):
            store.add_json(START + second, START + second + 1, series)
            store.flush(START + second + 1)
        if second % 7 == 0 or second in (61, 62, 121):
            mine, theirs = with_minutes.merged(), without.merged()
            assert {key: one.to_json() for key, one in mine.items()} == {key: one.to_json() for key, one in theirs.items()}
            checked += 1
    assert checked > 20 and with_minutes.minutes.series and with_minutes.written


def test_a_minute_is_written_once_over_and_the_partial_last_one_at_the_end():
    out, minutes_out = io.StringIO(), io.StringIO()
    store = IntervalStore(out, minutes_out=minutes_out)
    rng = random.Random(1)
    written = []
    for second in range(125):
        store.add(START + second, START + second + 1, one_second(rng, 3))
        store.flush(START + second + 1)
        written.append(minutes_out.getvalue().count("\n"))
    assert written[59] == 0 and written[60] == 1 and written[119] == 1 and written[120] == 2 and written[124] == 2
    store.flush()
    assert minutes_out.getvalue().count("\n") == 3
    store.flush()  # nothing more to write
    assert minutes_out.getvalue().count("\n") == 3


def test_the_run_recorder_writes_the_minutes_beside_metrics_jsonl(tmp_path):
    environment = type("Environment", (), {"events": object(), "runner": None})()
    run = RunRecorder(environment, tmp_path, None).start(ticking=False)
    rng = random.Random(2)
    for second in range(3):
        run.add_worker_report("w0", {"intervals": [{"start": START + second, "end": START + second + 1,
                                                    "series": [one.to_json() for one in one_second(rng, 10)]}]})
    run.stop()
    minutes = assert_minutes_are_the_merge((tmp_path / METRICS_FILE).read_text(), (tmp_path / MINUTES_FILE).read_text())
    assert len(minutes) == 1


# -- the readers ----------------------------------------------------------------------------------------


def write_folder(folder, seconds: int, seed: int = 3):
    """A finished run's folder, metrics.jsonl and its minutes written by `IntervalStore`."""
    folder.mkdir(parents=True)
    events = open_events(folder)
    write_event(events, "run_started", at=START)
    out, minutes_out = open_metrics(folder), open_minutes(folder)
    record(IntervalStore(out, minutes_out=minutes_out), seconds, seed)
    out.close()
    minutes_out.close()
    write_event(events, "run_stopped", at=START + seconds)
    events.close()
    write_run_json(folder, command="test", target="smtp://127.0.0.1:2525", users=10, duration=seconds,
                   started_at=START, stopped_at=START + seconds)
    return folder


@pytest.fixture
def long_runs_from(monkeypatch):
    """Runs longer than ten minutes count as long: a run of 25 minutes is read from its minutes."""
    monkeypatch.setattr("loadkit.results._minutes.LONG_RUN_SECONDS", 600)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The same 25-minute run twice: with its minutes, and as a folder from before them (same name)."""
    root = tmp_path_factory.mktemp("minutes")
    with_minutes = write_folder(root / "new" / "run", 1_500)
    without = root / "old" / "run"
    shutil.copytree(with_minutes, without)
    (without / MINUTES_FILE).unlink()
    return with_minutes, without


def a_copy(folder, tmp_path):
    copy = tmp_path / "copy" / "run"
    shutil.copytree(folder, copy)
    return copy


def page_of(folder) -> str:
    """The report's page without its charts: every number and table it prints."""
    return render_page(load_run(folder), {})


def test_a_long_run_is_read_from_its_minutes_and_the_report_prints_the_same_numbers(long_runs_from, written):
    with_minutes, without = written
    minutes, seconds = read_metrics(with_minutes / METRICS_FILE), read_metrics(without / METRICS_FILE)
    assert (minutes.source, seconds.source) == (MINUTES_FILE, METRICS_FILE)
    assert (minutes.intervals, seconds.intervals) == (25, 1_500)
    assert minutes.bucket_seconds == seconds.bucket_seconds == 60  # 3 s, rounded to whole minutes
    assert (minutes.origin, minutes.end) == (seconds.origin, seconds.end)
    for key, totals in seconds.series.items():
        mine = minutes.series[key]
        assert (mine.ok, mine.failed, mine.bytes, mine.errors) == (totals.ok, totals.failed, totals.bytes, totals.errors)
        assert np.array_equal(mine.counts, totals.counts) and np.array_equal(mine.failed_counts, totals.failed_counts)
    assert minutes.timeline.equals(seconds.timeline)
    assert minutes.total_over_time.equals(seconds.total_over_time)
    assert minutes.reply_codes.equals(seconds.reply_codes)
    assert minutes.percentiles_over_time.keys() == seconds.percentiles_over_time.keys()
    for key, frame in seconds.percentiles_over_time.items():
        assert minutes.percentiles_over_time[key].equals(frame)
    assert page_of(with_minutes) == page_of(without)  # byte for byte, every table of the page
    run = load_run(with_minutes)
    assert run.percentiles_note == ("Percentiles of each 60 s, from the merge of its histograms. Read from "
                                    f"{MINUTES_FILE}, the run's intervals merged per minute as it wrote them.")
    assert load_run(without).percentiles_note == "Percentiles of each 60 s, from the merge of its histograms."


def test_a_long_run_s_check_measures_the_same_from_its_minutes(long_runs_from, written):
    with_minutes, without = written
    minutes, minute_notes = evaluate_with_notes(with_minutes, CHECKS)
    seconds, notes = evaluate_with_notes(without, CHECKS)
    assert [(v.expression, v.measured, v.passed, v.error) for v in minutes] == \
        [(v.expression, v.measured, v.passed, v.error) for v in seconds]
    assert all(v.measured is not None for v in minutes)
    assert {v.source for v in minutes} == {MINUTES_FILE} and {v.source for v in seconds} == {METRICS_FILE}
    assert format_table(minutes, minute_notes) == format_table(seconds, notes)  # what `loadkit check` prints


def test_a_shorter_run_is_read_from_metrics_jsonl_whatever_is_beside_it(written):
    with_minutes, _without = written
    data = read_metrics(with_minutes / METRICS_FILE)
    assert (data.source, data.bucket_seconds, data.intervals) == (METRICS_FILE, 3, 1_500)
    assert {v.source for v in evaluate(with_minutes, CHECKS)} == {METRICS_FILE}


def cut_short(path) -> None:
    """A run killed mid-minute: its minutes stop at the last whole one."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))


def damage_one(path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[5] = lines[5][: len(lines[5]) // 2] + "\x00garbage\n"
    path.write_text("".join(lines))


def drop_first(path) -> None:
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))


@pytest.mark.parametrize("change", [lambda path: path.unlink(), cut_short, damage_one, drop_first,
                                    lambda path: path.write_text("")],
                         ids=["missing", "cut short", "a damaged line", "its first minute lost", "empty"])
def test_minutes_that_do_not_cover_the_run_soundly_are_passed_over_without_a_word(long_runs_from, written, tmp_path,
                                                                                  change):
    with_minutes, without = written
    folder = a_copy(with_minutes, tmp_path)
    change(folder / MINUTES_FILE)
    notes, expected = Notes(), Notes()
    data = read_metrics(folder / METRICS_FILE, notes=notes)
    assert data.source == METRICS_FILE
    assert notes.lines() == []  # the full read says what it always says: here, nothing
    assert page_of(folder) == page_of(without)
    verdicts, check_notes = evaluate_with_notes(folder, CHECKS)
    assert {v.source for v in verdicts} == {METRICS_FILE} and check_notes == []
    assert read_metrics(without / METRICS_FILE, notes=expected).intervals == data.intervals


def test_damage_in_the_middle_of_metrics_jsonl_is_not_read_when_the_minutes_are(long_runs_from, written, tmp_path):
    """The minutes were written from the run's own numbers, not from metrics.jsonl: a line damaged there
    since costs the report nothing, and is not looked for (the report says which file it read)."""
    with_minutes, without = written
    folder = a_copy(with_minutes, tmp_path)
    damage_one(folder / METRICS_FILE)
    notes = Notes()
    data = read_metrics(folder / METRICS_FILE, notes=notes)
    assert data.source == MINUTES_FILE and notes.lines() == []
    exact = read_metrics(without / METRICS_FILE)
    assert {key: (t.ok, t.failed) for key, t in data.series.items()} == \
        {key: (t.ok, t.failed) for key, t in exact.series.items()}
    # The same folder without its minutes: the line is skipped, said, and its second's messages are missing.
    (folder / MINUTES_FILE).unlink()
    notes = Notes()
    damaged = read_metrics(folder / METRICS_FILE, notes=notes)
    assert notes.lines() == [f"{METRICS_FILE}: 1 damaged line skipped (line 6)"]
    lost = sum(t.ok + t.failed for t in exact.series.values()) - sum(t.ok + t.failed for t in damaged.series.values())
    assert lost > 0


def test_a_damaged_line_of_minutes_is_said_by_nobody(long_runs_from, written, tmp_path):
    folder = a_copy(written[0], tmp_path)
    damage_one(folder / MINUTES_FILE)
    notes = Notes()
    assert len(list(read_minutes(folder, notes))) == 24
    assert notes.lines() == [f"{MINUTES_FILE}: 1 damaged line skipped (line 6)"]  # what the reader saw
    report_notes = Notes()
    assert read_metrics(folder / METRICS_FILE, notes=report_notes).source == METRICS_FILE
    assert report_notes.lines() == []  # what the report says: metrics.jsonl was whole
