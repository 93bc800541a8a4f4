"""Reports from a loadkit results folder: metrics.jsonl's HdrHistograms, errors.csv, events.jsonl.

The folders are made here with real HdrHistograms (``hdrh``), recorded value
by value, so every expected number is computed independently of the report:
a reference histogram records every latency of a name, and the report's
percentiles must be its percentiles.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from loadkit.hdr import percentiles_ms
from loadkit.report import TOTAL_LABEL, build_report, load_run, read_metrics
from tests.unit.test_report import embedded_charts, read_tables

START = 1_795_652_195.0
PHASES = ("connect", "banner", "helo", "mail", "rcpt", "data", "end-of-data", "quit")
SCRIPT_REPLY = "554 5.7.1 <script>alert('owned')</script> message refused"


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 3_600_000_000, 3)


@dataclass
class Reference:
    """Every latency recorded for one name, in one histogram, and its counts."""

    histogram: HdrHistogram = field(default_factory=new_histogram)
    ok: int = 0
    failed: int = 0

    def ms(self, percentile: float) -> float:
        return percentiles_ms(self.histogram, [percentile])[percentile]  # loadkit's one rank rule


@dataclass
class SyntheticRun:
    folder: Path
    references: dict[tuple[str, str, str], Reference]  # (kind, type, name)
    total: Reference
    seconds: int


def make_results(
    folder: Path,
    seconds: int = 20,
    per_second: int = 40,
    names=(("SMTP", "send"), ("LMTP", "deliver")),
    latency_ms: float = 8.0,
    failure_every: int = 25,
    users: int = 10,
    seed: int = 7,
    errors_csv: bool = True,
    events: bool = True,
    run_json: dict | None = None,
    skip_seconds=(),
    rise: float = 1.0,
) -> SyntheticRun:
    """A results folder as the metrics writer leaves it: one interval a second, every file of the contract."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    references: dict[tuple[str, str, str], Reference] = {}
    total = Reference()
    lines = []
    sequence = 0
    for second in range(seconds):
        if second in skip_seconds:
            continue  # an interval with no traffic may be left out
        interval = {"start": START + second, "end": START + second + 1, "users": min(users, second + 1), "series": []}
        for type_, name in names:
            histogram = new_histogram()
            phase_histograms = {phase: new_histogram() for phase in PHASES}
            ok = failed = 0
            errors: dict[str, int] = {}
            for _ in range(per_second):
                sequence += 1
                # Latency rises over the run (by `rise`), with a long tail: a knee to see.
                micros = max(1, round(rng.lognormvariate(0, 0.5) * latency_ms * 1000 * (1 + rise * second / seconds)))
                histogram.record_value(micros)
                key = ("request", type_, name)
                reference = references.setdefault(key, Reference())
                reference.histogram.record_value(micros)
                total.histogram.record_value(micros)
                if sequence % failure_every == 0:
                    failed += 1
                    error = "550 5.1.1 at RCPT" if sequence % (2 * failure_every) else "554 5.7.1 at end-of-data"
                    errors[error] = errors.get(error, 0) + 1
                else:
                    ok += 1
                for index, phase in enumerate(PHASES):
                    share = max(1, micros * (index + 1) // 36)
                    phase_histograms[phase].record_value(share)
                    phase_reference = references.setdefault(("phase", type_, phase), Reference())
                    phase_reference.histogram.record_value(share)
                    phase_reference.ok += 1
            references[("request", type_, name)].ok += ok
            references[("request", type_, name)].failed += failed
            total.ok += ok
            total.failed += failed
            interval["series"].append(
                {"kind": "request", "type": type_, "name": name, "ok": ok, "failed": failed, "bytes": ok * 5120,
                 "errors": errors, "histogram": histogram.encode().decode("ascii")}
            )  # fmt: skip
            for phase, phase_histogram in phase_histograms.items():
                interval["series"].append(
                    {"kind": "phase", "type": type_, "name": phase, "ok": per_second, "failed": 0, "bytes": 0,
                     "errors": {}, "histogram": phase_histogram.encode().decode("ascii")}
                )  # fmt: skip
        lines.append(json.dumps(interval))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    metadata = {
        "command": "loadkit source -s 10",
        "target": "smtp://127.0.0.1:2525",
        "users": users,
        "spawn_rate": 10,
        "duration": seconds,
        "started_at": START,
        "stopped_at": START + seconds,
        "workers": 2,
        "worker_shares": {"worker-a": total.ok // 2, "worker-b": total.ok - total.ok // 2},
        "loadkit_version": "0.1.0",
    }
    (folder / "run.json").write_text(json.dumps(run_json if run_json is not None else metadata))
    if errors_csv:
        with (folder / "errors.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["type", "name", "error", "phase", "code", "count", "example"])
            writer.writerow(["SMTP", "send", "550 5.1.1 at RCPT", "rcpt", "550", 12, "550 5.1.1 <nobody@example.test>: Recipient address rejected"])
            writer.writerow(["SMTP", "send", "554 5.7.1 at end-of-data", "end-of-data", "554", 3, SCRIPT_REPLY])
    if events:
        with (folder / "events.jsonl").open("w") as handle:
            for event in (
                {"time": START, "kind": "run_started", "worker": None, "detail": "2 workers"},
                {"time": START + seconds / 2, "kind": "worker_missing", "worker": "worker-b", "detail": "no heartbeat for 3 s <b>"},
                {"time": START + seconds, "kind": "run_stopped", "worker": None, "detail": ""},
            ):
                handle.write(json.dumps(event) + "\n")
    return SyntheticRun(folder, references, total, seconds)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> SyntheticRun:
    return make_results(tmp_path_factory.mktemp("metrics") / "20261126-001635-smtp")


@pytest.fixture(scope="module")
def page(synthetic) -> str:
    return build_report(synthetic.folder).read_text(encoding="utf-8")


# -- numbers -------------------------------------------------------------------------------


def test_summary_percentiles_are_those_of_the_merged_histograms(synthetic):
    run = load_run(synthetic.folder)
    assert run.source == "metrics.jsonl"
    rows = {(row.type, row.name): row for row in run.requests}
    assert set(rows) == {("SMTP", "send"), ("LMTP", "deliver")}
    for (type_, name), row in rows.items():
        reference = synthetic.references[("request", type_, name)]
        assert (row.count, row.failures) == (reference.ok + reference.failed, reference.failed)
        expected = {f"p{p:g}": reference.ms(p) for p in (50, 90, 95, 99, 99.9)}
        expected["min"] = reference.histogram.get_min_value() / 1000.0
        expected["max"] = reference.histogram.get_max_value() / 1000.0
        assert row.latency == expected
        assert row.rate == pytest.approx(row.count / synthetic.seconds)
    total = run.total
    assert total.label == TOTAL_LABEL
    assert total.count == synthetic.total.ok + synthetic.total.failed
    assert [total.latency[k] for k in ("p50", "p99", "p99.9")] == [synthetic.total.ms(p) for p in (50, 99, 99.9)]


def test_phase_percentiles_are_those_of_the_merged_phase_histograms(synthetic):
    run = load_run(synthetic.folder)
    assert [row.name for row in run.phases if row.type == "SMTP"] == list(PHASES)  # protocol order
    for row in run.phases:
        reference = synthetic.references[("phase", row.type, row.name)]
        assert row.latency["p95"] == reference.ms(95)
        assert row.latency["p99.9"] == reference.ms(99.9)
        assert row.count == reference.ok


def test_the_summary_table_shows_the_merged_percentiles(synthetic, page):
    summary = read_tables(page)["summary"]
    assert [(row["Type"], row["Name"]) for row in summary] == [("LMTP", "deliver"), ("SMTP", "send"), ("", TOTAL_LABEL)]
    send = synthetic.references[("request", "SMTP", "send")]
    row = summary[1]
    assert row["Count"] == f"{send.ok + send.failed:,}"
    assert row["Failures"] == str(send.failed)
    assert row["Failure %"] == f"{100 * send.failed / (send.ok + send.failed):.2f}%"
    from loadkit.report._html import ms_text

    for column, percentile in (("p50 ms", 50), ("p90 ms", 90), ("p95 ms", 95), ("p99 ms", 99), ("p99.9 ms", 99.9)):
        assert row[column] == ms_text(send.ms(percentile)), column
    assert row["msgs/s"] == f"{(send.ok + send.failed) / synthetic.seconds:.1f}"


def test_time_buckets_merge_histograms_so_long_runs_keep_exact_percentiles(tmp_path, monkeypatch):
    import loadkit.report._metrics as metrics

    synthetic = make_results(tmp_path / "run", seconds=12, per_second=10, names=(("SMTP", "send"),), events=False)
    monkeypatch.setattr(metrics, "MAX_POINTS", 3)  # 12 s in buckets of 4 s
    data = read_metrics(synthetic.folder / "metrics.jsonl")
    assert data.bucket_seconds == 4
    frame = data.percentiles_over_time[("SMTP", "send")]
    assert list(frame["elapsed"]) == [0, 4, 8]
    # The same 4-second bucket, recomputed from the file's own interval histograms.
    lines = [json.loads(line) for line in (synthetic.folder / "metrics.jsonl").read_text().splitlines()]
    merged = new_histogram()
    for line in lines[4:8]:
        merged.add(HdrHistogram.decode(line["series"][0]["histogram"]))
    assert frame["p95"].iloc[1] == merged.get_value_at_percentile(95) / 1000.0
    assert list(data.timeline["ok_per_s"] + data.timeline["failed_per_s"]) == [10, 10, 10]
    summary = data.series[("request", "SMTP", "send")]
    assert summary.ok + summary.failed == 120


def test_a_second_without_traffic_reads_as_zero_throughput_and_no_percentile(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=6, per_second=5, names=(("SMTP", "send"),), skip_seconds=(2, 3))
    data = read_metrics(synthetic.folder / "metrics.jsonl")
    assert list(data.timeline["ok_per_s"] + data.timeline["failed_per_s"]) == [5, 5, 0, 0, 5, 5]
    assert list(data.percentiles_over_time[("SMTP", "send")]["elapsed"]) == [0, 1, 4, 5]


def test_reply_codes_over_time_come_from_each_intervals_errors(synthetic):
    data = read_metrics(synthetic.folder / "metrics.jsonl")
    codes = data.reply_codes
    assert set(codes.columns) == {"elapsed", "550", "554"}
    total_failed = synthetic.total.failed
    assert codes[["550", "554"]].to_numpy().sum() == total_failed  # one-second buckets: per second == count


# -- the page ----------------------------------------------------------------------------------


CHARTS = (
    "throughput", "users", "percentiles-1", "percentiles-2", "percentiles-3", "reply-codes",
    "distribution", "knee", "phases",
)  # fmt: skip


def test_every_chart_is_there_and_is_an_svg(page):
    for key in CHARTS:
        assert f'id="chart-{key}"' in page, key
    charts = embedded_charts(page)
    assert len(charts) == len(CHARTS)
    assert all(chart.startswith("<svg ") and len(chart) > 5000 for chart in charts)


def test_the_page_is_self_contained(page):
    import re

    assert not re.search(r'(?:src|href)="(?!data:|#)', page)
    assert "<link" not in page and "@import" not in page


def test_server_text_is_escaped_in_the_errors_table(page):
    errors = read_tables(page)["errors"]
    assert [row["Error"] for row in errors] == ["550 5.1.1 at RCPT", "554 5.7.1 at end-of-data"]
    assert errors[1]["Example reply"] == SCRIPT_REPLY  # the text, as the server sent it
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # our own, at the end


def test_phases_events_and_run_metadata_are_shown(synthetic, page):
    tables = read_tables(page)
    phases = tables["phases"]
    assert [row["Phase"] for row in phases[: len(PHASES)]] == list(PHASES)
    events = tables["events"]
    assert [row["Event"] for row in events] == ["run_started", "worker_missing", "run_stopped"]
    assert events[1]["Since start"] == "+10.0 s" and events[1]["Detail"] == "no heartbeat for 3 s <b>"
    assert "1 event says the numbers may be off" in page
    run_rows = dict(row for row in _table_rows(page, "run-table"))
    assert run_rows["Target"] == "smtp://127.0.0.1:2525"
    assert run_rows["Started"] == "2026-11-26 00:16:35 UTC"
    assert "Requests per worker" not in run_rows  # a table of its own
    workers = read_tables(page)["workers"]
    assert [row["Host"] for row in workers] == ["worker-a", "worker-b"]
    assert sum(int(row["Messages"].replace(",", "")) for row in workers) == synthetic.total.ok


def _table_rows(page: str, table_id: str) -> list[list[str]]:
    from tests.unit.test_report import TableReader

    reader = TableReader()
    reader.feed(page)
    return reader.tables[table_id]


def test_verdicts_json_in_the_folder_is_shown(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=3, per_second=5, names=(("SMTP", "send"),), events=False)
    verdicts = {
        "passed": False,
        "verdicts": [
            {"expression": "p95<250ms", "measured": 12.5, "limit": 250.0, "passed": True, "unit": "ms", "error": None},
            {"expression": "fail_ratio<0.01", "measured": 0.04, "limit": 0.01, "passed": False, "unit": "", "error": None},
        ],
    }
    (synthetic.folder / "verdicts.json").write_text(json.dumps(verdicts))
    page = build_report(synthetic.folder).read_text(encoding="utf-8")
    rows = read_tables(page)["verdicts"]
    assert [(r["Threshold"], r["Measured"], r["Limit"], r["Result"]) for r in rows] == [
        ("p95<250ms", "12.5 ms", "250 ms", "pass"),
        ("fail_ratio<0.01", "0.04", "0.01", "FAIL"),
    ]


def test_broken_lines_and_histograms_are_skipped_and_said(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=4, per_second=5, names=(("SMTP", "send"),), events=False)
    path = synthetic.folder / "metrics.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["series"][0]["histogram"] = "bm90IGEgaGlzdG9ncmFt"
    path.write_text("\n".join([lines[0], json.dumps(broken), "{not json", *lines[2:]]) + "\n")
    run = load_run(synthetic.folder)
    # A line whose histogram does not decode is damaged as a whole, as `loadkit check` sees it.
    assert run.requests[0].count == 15
    assert run.problems == ["metrics.jsonl: 2 damaged lines skipped (lines 2, 3)"]
    page = build_report(synthetic.folder).read_text(encoding="utf-8")
    assert "metrics.jsonl: 2 damaged lines skipped (lines 2, 3)" in page


def test_a_metrics_report_imports_neither_locust_nor_pyplot(synthetic, tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from loadkit.report import build_report; "
        f"build_report({str(synthetic.folder)!r}, {str(tmp_path / 'r.html')!r}); "
        "import matplotlib; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'locust' or m == 'matplotlib.pyplot'), "
        "matplotlib.get_backend() if 'matplotlib.pyplot' in sys.modules else 'no pyplot')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "[] no pyplot\n"), result.stderr[-2000:]


def test_a_run_killed_mid_line_still_gives_a_report(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=4, per_second=5, names=(("SMTP", "send"),), events=False)
    path = synthetic.folder / "metrics.jsonl"
    path.write_text(path.read_text() + '{"start": 1795652199.0, "end": 17956')  # the writer stopped here
    run = load_run(synthetic.folder)
    assert run.requests[0].count == 20 and run.duration == 4
    assert run.problems == ["metrics.jsonl: 1 damaged line skipped (line 5)"]


def test_an_empty_metrics_file_falls_back_to_locusts_csv_or_says_so(tmp_path):
    from tests.unit.test_report import write_results

    folder = write_results(tmp_path / "with-csv")
    (folder / "metrics.jsonl").write_text("")
    run = load_run(folder)
    assert run.source == "locust_stats.csv" and run.total.count == 411
    assert run.problems == ["metrics.jsonl holds no interval"]

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "metrics.jsonl").write_text("\n")
    page = build_report(bare).read_text(encoding="utf-8")
    assert "metrics.jsonl holds no interval" in page and "No requests were measured." in page


@pytest.mark.parametrize("layout", [(1, 3_600_000_000, 3), (1, 60_000_000, 3), (1, 3_600_000_000, 2), (1000, 3_600_000_000, 3)])
def test_decoding_matches_hdrh_in_any_layout(layout):
    """The report's own fast decoder (standard layout) and its re-bucketing (others) against hdrh."""
    import numpy as np

    from loadkit.report import Distribution, decode_counts

    rng = random.Random(5)
    histogram = HdrHistogram(*layout)
    reference = new_histogram()
    for _ in range(3000):
        micros = max(1000, min(int(rng.lognormvariate(9, 2)), 59_000_000))
        histogram.record_value(micros)
        reference.record_value(histogram.get_lowest_equivalent_value(micros))
    counts = decode_counts(histogram.encode())
    assert counts.sum() == 3000
    if layout == (1, 3_600_000_000, 3):
        assert np.array_equal(counts, np.ctypeslib.as_array(HdrHistogram.decode(histogram.encode()).counts).astype(np.int64))
    distribution = Distribution.from_counts(counts)
    # Re-bucketed by each count's lowest value: the standard layout's percentiles of those values.
    assert distribution.percentiles([50, 99, 99.9]) == [float(reference.get_value_at_percentile(p)) for p in (50, 99, 99.9)]
