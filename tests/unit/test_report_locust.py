"""A report from the CSV files a real headless Locust run writes (``locust --csv``).

The locustfile fires a fixed number of request events, all in the first
second, so the counts Locust writes are known exactly by the time it stops.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from loadkit.report import build_report, load_stats
from tests.unit.test_report import embedded_pngs, read_tables

USERS = 2
SENDS_PER_USER = 50  # every 5th fails with a reply that carries markup
DELIVERIES_PER_USER = 30

LOCUSTFILE = textwrap.dedent(
    f"""
    from locust import User, constant, task

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
        "--csv", "results/locust", "--only-summary", "--exit-code-on-error", "0",
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

    page = build_report(locust_results, tmp_path / "report.html").read_text(encoding="utf-8")
    deliver, send, total = read_tables(page)["requests"]
    assert (send["Count"], send["Failures"], send["Failure %"]) == ("100", "20", "20.00%")
    assert (send["Min ms"], send["Max ms"]) == ("1", "50")
    assert (deliver["Count"], deliver["Failures"], deliver["Median ms"]) == ("60", "0", "2")
    assert (total["Name"], total["Count"], total["Failures"], total["Failure %"]) == ("Aggregated", "160", "20", "12.50%")
    (failure,) = read_tables(page)["failures"]
    assert (failure["Name"], failure["Occurrences"]) == ("send", "20")
    assert "<script" not in page.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert len(embedded_pngs(page)) == 3  # throughput, latency, users


def test_building_a_report_imports_neither_locust_nor_pyplot(locust_results, tmp_path):
    code = (
        "import sys; from loadkit.report import build_report; "
        f"build_report({str(locust_results)!r}, {str(tmp_path / 'r.html')!r}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'locust' or m == 'matplotlib.pyplot'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr[-2000:]
    assert (tmp_path / "r.html").stat().st_size > 0
