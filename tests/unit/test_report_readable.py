"""What a person reads first: the sink as a table and a verdict, the cards, the workers, charts that say only what is true.

Each test here stands for a way the report misled its reader: the sink's
stats as a JSON dump, cards without p50, a knee promised for a fixed load,
partial seconds drawn as whole ones, Apache's busy workers flat on an axis
of thousands, psutil's first 0% drawn as a ramp, worker ids as one line of
hex, and SMTP's "reply code" in an HTTP report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
from hdrh.histogram import HdrHistogram

from loadkit.probes._host import HostProbe
from loadkit.report import build_report, load_run
from loadkit.report._build import load_was_varied, real_spans
from loadkit.report._html import ms_text
from loadkit.report._server_side import probe_panels, probe_rows
from tests.unit.test_report import TableReader, read_glance, read_run_table, read_tables
from tests.unit.test_report_metrics import START, make_results


def sink_stats(messages: int, replies=None) -> dict:
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    for micros in range(500, 5000, 3):
        histogram.record_value(micros)
    return {
        "sessions": 12, "messages": messages, "recipients": messages, "bytes": messages * 5120, "timeouts": 0,
        "duration": 20.0, "replies": replies or {"220": 12, "250": 3 * messages, "354": messages},
        "faults": {"delay": {"DATA": 4}}, "tls": {"sessions": 0, "failures": 0}, "auth": {"ok": 0, "failed": 0},
        "store": {"stored": 0, "skipped": 0, "failed": 0},
        "trace": {"messages": messages, "duplicates": 0, "early": 0, "delay_ms": {"p50": 1.5, "p99": 4.9},
                  "delay_histogram": histogram.encode().decode("ascii")},
    }  # fmt: skip


def with_run_json(synthetic, **extra) -> None:
    path = synthetic.folder / "run.json"
    run = json.loads(path.read_text())
    run.update(extra)
    path.write_text(json.dumps(run))


@pytest.fixture(scope="module")
def sink_run(tmp_path_factory):
    synthetic = make_results(tmp_path_factory.mktemp("sink") / "run", seconds=8, per_second=10, failure_every=10**9)
    with_run_json(synthetic, sink=sink_stats(synthetic.total.ok, {"250": 5, "<b>550</b>": 1}))
    return synthetic


def test_the_sink_is_a_table_a_verdict_and_a_chart_not_a_json_dump(sink_run):
    page = build_report(sink_run.folder).read_text(encoding="utf-8")
    assert "delay_histogram" not in page and "HISTF" not in page  # no base64 on the page
    assert "Sink" not in read_run_table(page)
    rows = _sink_rows(page)
    ok = sink_run.total.ok
    assert rows["Messages"] == f"{ok:,}" and rows["Sessions"] == "12" and rows["Bytes"] == f"{ok * 5120:,}"
    assert rows["Faults injected"] == "delay: DATA 4"
    assert rows["Replies by code"] == "250 5, <b>550</b> 1"  # read as text ...
    assert "&lt;b&gt;550&lt;/b&gt;" in page and "<b>550</b>" not in page  # ... escaped in the page
    assert rows["TLS"] == "0 sessions, 0 failed" and rows["AUTH"] == "0 ok, 0 refused"
    assert f'<p class="verdict ok" id="sink-verdict">\u2713 Locust counted {ok:,}, the sink received {ok:,}</p>' in page
    assert 'id="chart-sink-delay"' in page


def test_a_sink_that_received_fewer_is_flagged_at_the_top(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=4, per_second=10, failure_every=10**9)
    with_run_json(synthetic, sink=sink_stats(synthetic.total.ok - 3))
    page = build_report(synthetic.folder).read_text(encoding="utf-8")
    ok = synthetic.total.ok
    assert (f'id="sink-verdict">\u2717 Locust counted {ok:,}, the sink received {ok - 3:,}: 3 fewer at the sink '
            "than Locust counted.</p>") in page  # fmt: skip
    assert page.index("sink-verdict") < page.index('id="glance"')
    assert read_glance(page)["delivered / sent"] == f"{ok - 3:,} / {ok:,}"


def _sink_rows(page: str) -> dict[str, str]:
    reader = TableReader()
    reader.feed(page)
    return {row[0]: row[1] for row in reader.tables["sink-table"]}


def test_the_cards_have_p50_peak_users_and_delivered_of_sent(sink_run):
    page = build_report(sink_run.folder).read_text(encoding="utf-8")
    glance = read_glance(page)
    run = load_run(sink_run.folder)
    assert glance["p50 accepted"] == f"{ms_text(run.total.latency['p50'])} ms"
    assert glance["peak users"] == "8"  # make_results adds one user a second up to 10, for 8 seconds
    assert glance["delivered / sent"] == f"{sink_run.total.ok:,} / {sink_run.total.ok:,}"


def test_a_run_that_mostly_failed_shows_its_failures_first(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=3, per_second=10, failure_every=1)
    page = build_report(synthetic.folder).read_text(encoding="utf-8")
    first_card = page[page.index('id="glance"') :].split("</li>")[0]
    assert 'class="value">60</span><span class="what">messages failed' in first_card
    healthy = make_results(tmp_path / "healthy", seconds=3, per_second=10)
    first_healthy = build_report(healthy.folder).read_text(encoding="utf-8")
    assert 'class="what">messages<' in first_healthy[first_healthy.index('id="glance"') :].split("</li>")[0]


def test_latency_against_throughput_only_for_a_load_that_changed(tmp_path):
    fixed = make_results(tmp_path / "fixed", seconds=12, per_second=10, users=1)
    ramped = make_results(tmp_path / "ramped", seconds=12, per_second=10, users=10)  # one more user each second
    assert not load_was_varied(load_run(fixed.folder)) and load_was_varied(load_run(ramped.folder))
    fixed_page = build_report(fixed.folder).read_text(encoding="utf-8")
    ramped_page = build_report(ramped.folder).read_text(encoding="utf-8")
    assert 'id="chart-knee"' not in fixed_page and "Where the points turn up" not in fixed_page
    assert 'id="chart-knee"' in ramped_page and "Where the points turn up" in ramped_page


def test_a_quick_spawn_is_not_a_ramp(tmp_path):
    # users 10 for a second, then 20 to the end: the demo's shape
    synthetic = make_results(tmp_path / "spawn", seconds=20, per_second=5, users=2)
    assert not load_was_varied(load_run(synthetic.folder))


def test_throughput_of_a_first_second_cut_short_is_rated_over_its_real_span(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=5, per_second=40, names=(("SMTP", "send"),), failure_every=10**9)
    with_run_json(synthetic, started_at=START + 0.75)  # the run began 0.75 s into its first whole second
    page = build_report(synthetic.folder).read_text(encoding="utf-8")
    wide = page[page.index('id="chart-throughput"') : page.index("</figure>", page.index('id="chart-throughput"'))]
    # 40 messages in 0.25 s are 160/s, not 40/s; the next seconds are whole.
    assert "<title>0.75\u20131 s: 160 ok, 0 failed msgs/s</title>" in wide
    assert "<title>1\u20132 s: 40 ok, 0 failed msgs/s</title>" in wide


def test_apache_busy_workers_have_a_panel_of_their_own():
    rows = pd.DataFrame([{"time": START + i, "probe": "apache", "busy_workers": 1 + i % 4, "idle_workers": 100,
                          "requests_per_s": 1500.0} for i in range(5)])  # fmt: skip
    panels = probe_panels("apache", rows)
    busy = next(panel for panel in panels if any(column == "busy_workers" for column, _ in panel[2]))
    assert [column for column, _ in busy[2]] == ["busy_workers"]
    assert len(panels) == 3


def test_the_first_host_sample_of_zero_is_not_drawn():
    rows = pd.DataFrame([
        {"time": START, "probe": "host", "cpu_percent": 0.0, "generator_cpu_percent": 0.0},
        {"time": START + 1, "probe": "host", "cpu_percent": 55.0, "generator_cpu_percent": 40.0},
        {"time": START + 2, "probe": "host", "cpu_percent": 0.0, "generator_cpu_percent": 0.0},
    ])  # fmt: skip
    kept = probe_rows("host", rows)
    assert kept["time"].tolist() == [START + 1, START + 2]  # a later 0 is a reading, kept
    busy_first = rows.assign(cpu_percent=[12.0, 55.0, 0.0])
    assert len(probe_rows("host", busy_first)) == 3


def test_the_host_probe_reads_a_busy_target_from_its_first_sample():
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        probe = HostProbe([burner.pid])
        time.sleep(0.5)
        first = probe.sample()
    finally:
        burner.kill()
        burner.wait(timeout=10)
    assert first["target_processes"] == 1
    assert first["target_cpu_percent"] > 5  # psutil's first call would say 0.0
    assert first["cpu_percent"] > 0


def test_workers_are_a_table_of_host_share_and_rate(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=4, per_second=10, failure_every=10**9)
    with_run_json(synthetic, worker_shares={"vm_7b658aa690574354a6a31ac51c9baf11": 30, "vm_950f91e4bea04b168ebff8d70e747ba4": 10})
    page = build_report(synthetic.folder).read_text(encoding="utf-8")
    workers = read_tables(page)["workers"]
    assert [(w["Host"], w["Worker"], w["Messages"], w["Share"], w["msgs/s"]) for w in workers] == [
        ("vm", "7b658aa6", "30", "75.00%", "7.5"), ("vm", "950f91e4", "10", "25.00%", "2.5"),
    ]  # fmt: skip
    assert "7b658aa690574354a6a31ac51c9baf11" not in page
    assert "no percentile per worker" in page


def test_an_http_run_says_status_not_reply_code(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=4, per_second=10, names=(("GET", "/"),), failure_every=5, errors_csv=False)
    page = build_report(synthetic.folder).read_text(encoding="utf-8")
    assert "reply code" not in page.lower()
    assert "Failed requests per second by status" in page
    assert "Status" in read_tables(page)["errors"][0]


def test_server_text_in_charts_and_hover_values_stays_text(tmp_path):
    name = "<script>alert(1)</script>"
    synthetic = make_results(tmp_path / "run", seconds=4, per_second=10, names=(("SMTP", name),), failure_every=5)
    page = build_report(synthetic.folder).read_text(encoding="utf-8")
    assert page.lower().count("<script") == 1  # the page's own: the name is text in titles, legends and tables
    assert "Latency over time: SMTP &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_knee_rates_a_first_second_cut_short_over_its_real_span(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=12, per_second=40, names=(("SMTP", "send"),), failure_every=10**9)
    with_run_json(synthetic, started_at=START + 0.75)
    run = load_run(synthetic.folder)
    real_spans(run)
    assert run.knee.loc[run.knee["elapsed"] == 0, "rate"].tolist() == [160.0]
    assert run.knee.loc[run.knee["elapsed"] == 1, "rate"].tolist() == [40.0]
