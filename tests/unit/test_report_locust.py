"""A report from the files a real headless Locust run writes: ``--csv`` (with
``--csv-full-history``) and ``--json-file``, so any Locust user can use it.

The locustfile fires a fixed number of request events, all in the first
second, so the counts Locust writes are known exactly by the time it stops.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from loadkit.report import TOTAL_LABEL, build_report, load_run, load_stats
from tests.unit.test_report import embedded_charts, read_tables

USERS = 2
SENDS_PER_USER = 50  # every 5th fails with a reply that carries markup
DELIVERIES_PER_USER = 30

LOCUSTFILE = textwrap.dedent(
    f"""
    from locust import User, constant, events, task

    from loadkit.loop_clock import refresh_loop_clock

    # -t 3s counted from the start: gevent's clock stood still while Locust started
    events.init.add_listener(refresh_loop_clock)

    class FixedBurstUser(User):
        wait_time = constant(600)  # one burst per user, then idle until the run ends

        @task
        def burst(self):
            fire = self.environment.events.request.fire
            for i in range({SENDS_PER_USER}):
                error = Exception("550 5.7.1 <script>alert(1)</script> rejected") if i % 5 == 0 else None
                fire(request_type="SMTP", name="send", response_time=1.0 + i, response_length=5120,
                     exception=error, context={{}})
            for i in range({DELIVERIES_PER_USER}):
                fire(request_type="LMTP", name="deliver", response_time=2.0, response_length=100,
                     exception=None, context={{}})
    """
)


@pytest.fixture(scope="module")
def locust_results(tmp_path_factory):
    """The results folder of a 3-second headless Locust run."""
    folder = tmp_path_factory.mktemp("locust-run")
    (folder / "locustfile.py").write_text(LOCUSTFILE)
    command = [
        sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless",
        "-u", str(USERS), "-r", str(USERS), "-t", "3s",
        "--csv", "results/locust", "--csv-full-history", "--json-file", "results/stats",
        "--only-summary", "--exit-code-on-error", "0",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return folder / "results"


def test_the_report_counts_are_those_locust_wrote(locust_results, tmp_path):
    stats = load_stats(locust_results / "locust")
    assert list(zip(stats["Type"], stats["Name"], stats["Request Count"], stats["Failure Count"])) == [
        ("LMTP", "deliver", USERS * DELIVERIES_PER_USER, 0),
        ("SMTP", "send", USERS * SENDS_PER_USER, USERS * SENDS_PER_USER // 5),
        ("", "Aggregated", USERS * (SENDS_PER_USER + DELIVERIES_PER_USER), USERS * SENDS_PER_USER // 5),
    ]

    page = build_report(locust_results / "locust", tmp_path / "report.html").read_text(encoding="utf-8")
    deliver, send, total = read_tables(page)["summary"]
    assert (send["Count"], send["Failures"], send["Failure %"]) == ("100", "20", "20.00%")
    assert (send["Min ms"], send["Max ms"]) == ("1", "50")
    assert (deliver["Count"], deliver["Failures"], deliver["p50 ms"]) == ("60", "0", "2")
    assert (total["Name"], total["Count"], total["Failures"], total["Failure %"]) == (TOTAL_LABEL, "160", "20", "12.50%")
    (failure,) = read_tables(page)["errors"]
    assert (failure["Name"], failure["Count"]) == ("send", "20")
    assert page.lower().count("<script") == 1 and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # --csv-full-history: percentiles over time for each name, and for all requests
    for key in ("throughput", "users", "percentiles-1", "percentiles-2", "percentiles-3", "distribution"):
        assert f'id="chart-{key}"' in page, key
    assert len(embedded_charts(page)) == 6


def test_the_json_file_gives_the_same_counts_and_exact_response_times(locust_results, tmp_path):
    run = load_run(locust_results / "stats.json")
    assert run.source == "stats.json"
    rows = {(row.type, row.name): row for row in run.requests}
    send, deliver = rows[("SMTP", "send")], rows[("LMTP", "deliver")]
    assert (send.count, send.failures, deliver.count, deliver.failures) == (100, 20, 60, 0)
    # Response times 1..50 ms, twice each: Locust keeps values under 100 ms unrounded.
    assert (send.latency["min"], send.latency["p50"], send.latency["p90"], send.latency["max"]) == (1.0, 25.0, 45.0, 50.0)
    assert run.total.count == 160 and run.total.failures == 20
    assert run.timeline["ok_per_s"].sum() == 140 and run.timeline["failed_per_s"].sum() == 20

    # The NAME given to --json-file finds NAME.json too.
    page = build_report(locust_results / "stats", tmp_path / "json.html").read_text(encoding="utf-8")
    summary = read_tables(page)["summary"]
    assert [(row["Name"], row["Count"], row["Failures"]) for row in summary] == [
        ("deliver", "60", "0"), ("send", "100", "20"), (TOTAL_LABEL, "160", "20"),
    ]  # fmt: skip
    for key in ("throughput", "distribution"):
        assert f'id="chart-{key}"' in page, key


def test_building_a_report_imports_neither_locust_nor_pyplot(locust_results, tmp_path):
    code = (
        "import sys; from loadkit.report import build_report; "
        f"build_report({str(locust_results)!r}, {str(tmp_path / 'r.html')!r}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'locust' or m == 'matplotlib.pyplot'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr[-2000:]
    assert (tmp_path / "r.html").stat().st_size > 0
