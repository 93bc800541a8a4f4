"""The report module: Locust CSV files -> DataFrames -> one HTML page.

The CSV files here carry the exact headers Locust 2.47 writes with
``--csv PREFIX`` (``StatsCSV`` / ``StatsCSVFileWriter``), and rows shaped like
those of a real run (``test_report_locust.py`` makes them with Locust itself).
"""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from loadkit.report import (
    ReportError,
    aggregated_timeline,
    build_report,
    find_prefix,
    load_history,
    load_stats,
)
from loadkit.report._charts import codes_by_total

STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
HISTORY_HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
    "Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
    "Total Min Response Time,Total Max Response Time,Total Average Content Size"
)
FAILURES_HEADER = "Method,Name,Error,Occurrences,First Seen,Last Seen"
EXCEPTIONS_HEADER = "Count,Message,Traceback,Nodes"

STATS_ROWS = [
    'LMTP,"deliver,""quoted""",203,0,2.5,2.5,2.5,2.5,100.0,101.41932259325209,0.0,2,2,2,2,2,2,2,2,2,2,2',
    "SMTP,NA,7,0,3,3.1,2.9,3.4,50.0,3.5,0.0,3,3,3,3,3,3,3,3,3,3,3",
    "SMTP,send,201,16,18,17.30335607456844,1.096137033126315,29.89247207541009,5120.0,100.4201174445501,7.9936411896159285,18,22,24,25,27,29,29,30,30,30,30",
    ",Aggregated,411,16,2,9.865036066802617,1.096137033126315,29.89247207541009,2597.5742574257424,205.3,7.9936411896159285,2,13,18,21,25,27,29,29,30,30,30",
]
HISTORY_ROWS = [
    "1795652195,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0",
    "1795652196,4,,Aggregated,0.000000,0.000000,2,13,18,21,26,27,29,30,30,30,30,200,11,2,9.95274755503732,1.096137033126315,29.89247207541009,2710.4",
    "1795652197,4,,Aggregated,0.000000,0.000000,2,13,18,21,25,27,29,29,30,30,30,411,16,2,9.865036066802617,1.096137033126315,29.89247207541009,2597.5742574257424",
]
FAILURES_ROWS = [
    "SMTP,send,Exception('550 5.7.1 <script>alert(1)</script> & rejected'),16,2026-11-26T00:16:35Z,2026-11-26T00:16:37Z",
]

# A run stopped before any request: Locust writes zeros and "N/A".
EMPTY_STATS_ROWS = [",Aggregated,0,0,0,0.0,0,0,0.0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A"]
EMPTY_HISTORY_ROWS = [
    "1795652195,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0",
    "1795652196,2,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0",
]

EMBEDDED_CHART = re.compile(r'<figure class="chart" id="chart-[^"]+"><div class="wide">(<svg .*?</svg>)</div><div class="narrow">(<svg .*?</svg>)</div>', re.S)


def write_results(
    folder: Path,
    prefix: str = "locust",
    stats: list[str] | None = None,
    history: list[str] | None = None,
    failures: list[str] | None = None,
    run_json: dict | str | None = None,
    exceptions: list[str] | None = None,
) -> Path:
    """A results folder as ``locust --csv folder/prefix`` leaves it; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "_stats.csv": [STATS_HEADER, *(STATS_ROWS if stats is None else stats)],
        "_stats_history.csv": [HISTORY_HEADER, *(HISTORY_ROWS if history is None else history)],
        "_failures.csv": [FAILURES_HEADER, *(FAILURES_ROWS if failures is None else failures)],
        "_exceptions.csv": [EXCEPTIONS_HEADER, *(exceptions or [])],
    }
    for suffix, lines in files.items():
        (folder / f"{prefix}{suffix}").write_text("".join(line + "\r\n" for line in lines))  # csv.writer ends lines with CRLF
    if run_json is not None:
        text = run_json if isinstance(run_json, str) else json.dumps(run_json)
        (folder / "run.json").write_text(text)
    return folder


class TableReader(HTMLParser):
    """The text of every cell of every ``<table id=...>`` on a page, row by row."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self._table = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id"):
            self._table = self.tables.setdefault(dict(attrs)["id"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def read_tables(page: str) -> dict[str, list[dict[str, str]]]:
    """Each table with a header row as a list of {header: cell text}."""
    reader = TableReader()
    reader.feed(page)
    return {table_id: [dict(zip(rows[0], row)) for row in rows[1:]] for table_id, rows in reader.tables.items() if rows}


def read_run_table(page: str) -> dict[str, str]:
    """The run.json table: one (label, value) row per key."""
    reader = TableReader()
    reader.feed(page)
    return dict(reader.tables["run-table"])


class GlanceReader(HTMLParser):
    """The figures at the top of the page: {what: value}."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.items: dict[str, str] = {}
        self._span = None
        self._value = ""

    def handle_starttag(self, tag, attrs):
        if tag == "span":
            self._span = dict(attrs).get("class")

    def handle_endtag(self, tag):
        if tag == "span":
            self._span = None

    def handle_data(self, data):
        if self._span == "value":
            self._value = data
        elif self._span == "what":
            self.items[data] = self._value


def read_glance(page: str) -> dict[str, str]:
    reader = GlanceReader()
    reader.feed(page)
    return reader.items


def embedded_charts(page: str) -> list[str]:
    """The wide drawing of each chart on the page (each also has a narrow one)."""
    return [wide for wide, narrow in EMBEDDED_CHART.findall(page) if narrow.startswith("<svg ")]


# -- finding the files ---------------------------------------------------------


def test_a_folder_a_prefix_and_a_stats_path_find_the_same_files(tmp_path):
    folder = write_results(tmp_path / "run")
    assert find_prefix(folder) == folder / "locust"
    assert find_prefix(folder / "locust") == folder / "locust"
    assert find_prefix(folder / "locust_stats.csv") == folder / "locust"


def test_a_plain_locust_prefix_is_found_in_its_folder(tmp_path):
    folder = write_results(tmp_path / "run", prefix="nightly")
    assert find_prefix(folder) == folder / "nightly"


def test_several_prefixes_in_one_folder_ask_for_one(tmp_path):
    folder = write_results(tmp_path / "run", prefix="a")
    write_results(folder, prefix="b")
    with pytest.raises(ReportError, match=r"several stats files .*a_stats\.csv, b_stats\.csv"):
        find_prefix(folder)
    assert find_prefix(folder / "b") == folder / "b"


def test_missing_results_say_what_is_missing(tmp_path):
    with pytest.raises(ReportError, match="no such results folder"):
        find_prefix(tmp_path / "nope")
    with pytest.raises(ReportError, match=r"no \*_stats\.csv in"):
        find_prefix(tmp_path)


# -- loading -------------------------------------------------------------------


def test_stats_load_names_as_text_and_na_as_missing(tmp_path):
    folder = write_results(tmp_path / "run", stats=[*STATS_ROWS[:3], EMPTY_STATS_ROWS[0]])
    stats = load_stats(folder / "locust")
    assert list(stats["Name"]) == ['deliver,"quoted"', "NA", "send", "Aggregated"]  # "NA" is a name, not a gap
    assert list(stats["Request Count"]) == [203, 7, 201, 0]
    assert math.isnan(stats["95%"].iloc[-1])  # Locust's "N/A"
    assert stats["95%"].iloc[2] == 29


def test_the_aggregated_row_comes_last_whatever_the_file_order(tmp_path):
    folder = write_results(tmp_path / "run", stats=[STATS_ROWS[3], *STATS_ROWS[:3]])
    assert list(load_stats(folder / "locust")["Name"]) == ['deliver,"quoted"', "NA", "send", "Aggregated"]


def test_a_file_that_is_not_a_locust_stats_csv_is_refused(tmp_path):
    (tmp_path / "x_stats.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReportError, match="has no column 'Type'"):
        load_stats(tmp_path / "x")


def test_timeline_rates_come_from_the_running_totals(tmp_path):
    timeline = aggregated_timeline(load_history(write_results(tmp_path / "run") / "locust"))
    assert list(timeline["elapsed"]) == [0, 1, 2]
    assert list(timeline["users"]) == [0, 4, 4]
    # Locust's own Requests/s column reads 0 for these rows; the totals went 0 -> 200 -> 411.
    assert math.isnan(timeline["requests_per_s"].iloc[0])
    assert list(timeline["requests_per_s"].iloc[1:]) == [200, 211]
    assert list(timeline["failures_per_s"].iloc[1:]) == [11, 5]
    assert math.isnan(timeline["p95"].iloc[0])  # "N/A"
    assert list(timeline["p95"].iloc[1:]) == [27, 27]
    assert list(timeline["p99"].iloc[1:]) == [30, 29]


def test_timeline_has_no_rate_across_a_stats_reset_or_a_skipped_second(tmp_path):
    history = [
        HISTORY_ROWS[1],
        HISTORY_ROWS[2],
        HISTORY_ROWS[2].replace("1795652197", "1795652199").replace(",411,16,", ",50,1,"),  # reset, 2 s later
        HISTORY_ROWS[2].replace("1795652197", "1795652201").replace(",411,16,", ",250,3,"),  # 2 s later
    ]
    timeline = aggregated_timeline(load_history(write_results(tmp_path / "run", history=history) / "locust"))
    assert list(timeline["elapsed"]) == [0, 1, 3, 5]
    assert math.isnan(timeline["requests_per_s"].iloc[2])
    assert list(timeline["requests_per_s"].iloc[[1, 3]]) == [211, 100]


def test_full_history_rows_for_each_request_are_left_out_and_its_warm_up_zeros_are_gaps(tmp_path):
    # locust --csv-full-history: a row per request, then Aggregated; percentiles are 0 until
    # Locust's ~10 s window has a start.
    history = [
        HISTORY_ROWS[0],
        "1795652196,1,SMTP,send,0.000000,0.000000,0,0,0,0,0,0,0,0,0,0,0,25,1,11,11.9,1.04,28.7,5120.0",
        "1795652196,1,,Aggregated,0.000000,0.000000,0,0,0,0,0,0,0,0,0,0,0,25,1,11,11.9,1.04,28.7,5120.0",
        "1795652197,2,SMTP,send,0.000000,0.000000,11,19,22,23,27,28,29,30,30,30,30,75,3,11,11.9,1.04,29.2,5120.0",
        "1795652197,2,,Aggregated,0.000000,0.000000,11,19,22,23,27,28,29,30,30,30,30,75,3,11,11.9,1.04,29.2,5120.0",
    ]
    timeline = aggregated_timeline(load_history(write_results(tmp_path / "run", history=history) / "locust"))
    assert list(timeline["requests_per_s"].iloc[1:]) == [25, 50]
    assert timeline["p95"].isna().tolist() == [True, True, False]
    assert timeline["p95"].iloc[2] == 28


# -- the page ------------------------------------------------------------------


def test_the_report_shows_the_stats_file_counts_and_embeds_its_charts(tmp_path):
    folder = write_results(tmp_path / "20261126-001200-smtp", run_json={"target": "smtp://127.0.0.1:2525", "users": 4})
    output = build_report(folder)
    assert output == folder / "report.html"
    page = output.read_text(encoding="utf-8")

    summary = read_tables(page)["summary"]
    assert [(row["Type"], row["Name"]) for row in summary] == [
        ("LMTP", 'deliver,"quoted"'),
        ("SMTP", "NA"),
        ("SMTP", "send"),
        ("", "All requests"),
    ]
    send = summary[2]
    assert (send["Count"], send["Failures"], send["Failure %"]) == ("201", "16", "7.96%")
    assert (send["Min ms"], send["p50 ms"], send["p90 ms"], send["p95 ms"], send["p99 ms"], send["p99.9 ms"], send["Max ms"]) == (
        "1.10", "18", "27", "29", "30", "30", "29.9",
    )  # fmt: skip
    assert send["msgs/s"] == "100"
    total = summary[-1]
    assert (total["Count"], total["Failures"], total["Failure %"]) == ("411", "16", "3.89%")
    glance = read_glance(page)
    assert glance["messages"] == "411" and glance["p95"] == "27 ms" and glance["failed"] == "3.89%"

    assert "<title>Load test report: smtp://127.0.0.1:2525</title>" in page
    assert read_run_table(page) == {"Target": "smtp://127.0.0.1:2525", "Users": "4"}

    charts = embedded_charts(page)
    # throughput, users, percentiles since start, latency by percentile (from the CSV's percentile columns)
    assert [key for key in ("throughput", "users", "percentiles-1", "distribution") if f'id="chart-{key}"' in page] == [
        "throughput", "users", "percentiles-1", "distribution",
    ]  # fmt: skip
    assert page.count('<figure class="chart"') == len(charts) == 4
    assert all(chart.startswith("<svg ") and chart.endswith("</svg>") for chart in charts)
    # Self-contained: nothing to fetch.
    assert not re.search(r'(?:src|href)="(?!data:|#)', page)


def test_server_text_is_shown_never_run(tmp_path):
    stats = [STATS_ROWS[2].replace("SMTP,send,", "SMTP,<b>send</b>,"), STATS_ROWS[3]]
    failures = [FAILURES_ROWS[0], 'SMTP,<b>send</b>,"SMTPReplyError(554, \'<img src=x onerror=alert(2)>\')",3,,']
    folder = write_results(tmp_path / "run", stats=stats, failures=failures, run_json={"target": "<i>mx</i>"})
    page = build_report(folder).read_text(encoding="utf-8")

    assert page.lower().count("<script") == 1  # the page's own, last
    assert "<b>send</b>" not in page and "<i>mx</i>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; rejected" in page
    assert "<img " not in page  # the reply's <img> is text, not an image
    errors = read_tables(page)["errors"]
    assert [(row["Type"], row["Name"], row["Error"], row["Count"]) for row in errors] == [
        ("SMTP", "send", "Exception('550 5.7.1 <script>alert(1)</script> & rejected')", "16"),
        ("SMTP", "<b>send</b>", "SMTPReplyError(554, '<img src=x onerror=alert(2)>')", "3"),
    ]


def test_exceptions_raised_in_users_are_listed_with_their_traceback(tmp_path):
    traceback = '"  File ""<locustfile>"", line 9, in send\n    raise ValueError(""<bad>"")\n"'
    folder = write_results(tmp_path / "run", exceptions=[f'3,"ValueError(\'<bad>\')",{traceback},"worker-1, worker-2"'])
    page = build_report(folder).read_text(encoding="utf-8")
    (row,) = read_tables(page)["exceptions"]
    assert (row["Count"], row["Message"], row["Nodes"]) == ("3", "ValueError('<bad>')", "worker-1, worker-2")
    assert row["Traceback"] == 'show  File "<locustfile>", line 9, in send\n    raise ValueError("<bad>")\n'
    assert "<bad>" not in page and "&lt;locustfile&gt;" in page


def test_a_run_with_no_requests_still_gives_a_report(tmp_path):
    folder = write_results(tmp_path / "run", stats=EMPTY_STATS_ROWS, history=EMPTY_HISTORY_ROWS, failures=[])
    page = build_report(folder).read_text(encoding="utf-8")
    (total,) = read_tables(page)["summary"]
    assert (total["Name"], total["Count"], total["Failures"]) == ("All requests", "0", "0")
    assert (total["Failure %"], total["p95 ms"], total["Min ms"]) == ("\u2014", "\u2014", "\u2014")
    assert "No failures." in page
    assert 'id="chart-throughput"' in page and 'id="chart-users"' in page
    assert 'id="chart-percentiles-1"' not in page and 'id="chart-distribution"' not in page  # no latency to draw


def test_a_run_stopped_before_the_first_history_row_gives_a_report(tmp_path):
    folder = write_results(tmp_path / "run", stats=EMPTY_STATS_ROWS, history=[], failures=[])
    (folder / "locust_failures.csv").write_text("")  # stopped before even the header
    (folder / "locust_exceptions.csv").unlink()
    page = build_report(folder).read_text(encoding="utf-8")
    assert "No failures." in page and 'id="summary"' in page
    assert "<svg " not in page


def test_stats_with_other_percentiles_show_a_dash_for_the_missing_ones(tmp_path):
    # A locustfile may change locust.stats.PERCENTILES_TO_REPORT, and with it the columns.
    folder = tmp_path / "run"
    folder.mkdir()
    header = STATS_HEADER.split(",50%")[0] + ",50%,99%"
    rows = ["SMTP,send,10,0,5,5.0,4,9,100.0,2.0,0.0,5,9", ",Aggregated,10,0,5,5.0,4,9,100.0,2.0,0.0,5,9"]
    (folder / "locust_stats.csv").write_text("\n".join([header, *rows]) + "\n")
    (send, total) = read_tables(build_report(folder).read_text(encoding="utf-8"))["summary"]
    assert (send["p90 ms"], send["p95 ms"], send["p99 ms"]) == ("\u2014", "\u2014", "9")


def test_run_json_is_shown_and_a_broken_one_does_not_stop_the_report(tmp_path):
    metadata = {
        "target": "lmtp://127.0.0.1:24",
        "spawn_rate": 2,
        "duration": 60,
        "start_time": 1795652195,
        "loadkit_version": "0.1.0",
        "extra": {"a": 1},
    }
    page = build_report(write_results(tmp_path / "good", run_json=metadata)).read_text(encoding="utf-8")
    assert read_run_table(page) == {
        "Target": "lmtp://127.0.0.1:24",
        "Spawn rate (users/s)": "2",
        "Duration": "60 s",
        "loadkit version": "0.1.0",
        "Start time": "2026-11-26 00:16:35 UTC",
        "Extra": '{"a": 1}',
    }
    assert '<p class="subtitle">2026-11-26 00:16:35 UTC' in page

    page = build_report(write_results(tmp_path / "broken", run_json='{"target": "smtp://')).read_text(encoding="utf-8")
    assert "cannot read" in page and "run.json" in page
    assert read_tables(page)["summary"][-1]["Count"] == "411"


def test_the_output_can_go_elsewhere_and_an_unwritable_one_is_a_clear_error(tmp_path):
    folder = write_results(tmp_path / "run")
    assert build_report(folder / "locust", tmp_path / "elsewhere.html") == tmp_path / "elsewhere.html"
    assert (tmp_path / "elsewhere.html").stat().st_size > 0
    with pytest.raises(ReportError, match=r"cannot write .*missing-dir.*No such file"):
        build_report(folder, tmp_path / "missing-dir" / "report.html")


def test_reply_codes_with_equal_totals_keep_one_legend_order_whatever_the_columns_order():
    by_seconds = pd.DataFrame({"elapsed": [0, 1], "550": [1, 1], "421": [2, 0], "451": [0, 2], "554": [5, 0]})
    by_minutes = by_seconds[["elapsed", "451", "554", "421", "550"]]
    assert codes_by_total(by_seconds) == codes_by_total(by_minutes) == ["554", "421", "451", "550"]
