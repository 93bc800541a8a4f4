"""Locust's web UI as a mail console, driven by a real browser (Playwright with the system Chromium).

Real peers: Locust's own web UI and runners (`locust -f locustfiles/smtp.py`,
a master with two workers), ``loadkit sink`` with rejects and a delay, its
control port, and Chromium. A person's steps: fill the start form (message
size, a threshold), start, open the Mail tab and see the phases, replies by
code and the sink's counters move, stop, follow the report link. At the end
the tab's counts equal the sink's, exactly. A host the users cannot use is
refused by the form, with the reason, and nothing starts.

Every load is bounded: a few users, a run time as the form's upper bound,
and a Stop as soon as the tab has moved.
"""

from __future__ import annotations

import importlib.util
import io
import json
import signal
import sys
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from loadkit.phases import PHASES
from tests.conftest import _listening_ports, cannot_run, find_peer, free_port
from tests.integration.peers import WatchedProcess, loadkit_sink, watching

LOCUSTFILE = str(Path(__file__).resolve().parents[2] / "locustfiles" / "smtp.py")
SINK_FAULTS = ("--reject", "rcpt:550:0.05", "--delay", "data:2ms")
THRESHOLD = "phase.end-of-data:p99<2s"
RUN_TIME_BOUND = "90s"  # the form's run time: the most any of these runs can last
WAIT = 60.0  # seconds any one thing a person waits for may take


@pytest.fixture(scope="module")
def chromium():
    if importlib.util.find_spec("playwright") is None:
        cannot_run("playwright is not installed (pip install -e '.[test]')")
    executable = find_peer("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def _web_port(process, expected_ports: int, timeout: float = 30.0) -> int:
    """The port of Locust's web UI among those `process` listens on (a master also listens for workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.name} exited with {process.returncode}:\n{process.stderr_text()}"
        ports = _listening_ports(process.pid)
        if len(ports) >= expected_ports:
            for port in sorted(ports):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                        if response.status == 200:
                            return port
                except OSError:
                    continue
        time.sleep(0.1)
    raise TimeoutError(f"{process.name}: no web UI within {timeout} s")


@contextmanager
def locust_web_ui(results: Path, host: str, options: list[str], workers: int = 0, expected_status: int = 0,
                  locustfile: str = LOCUSTFILE):
    """`locust -f locustfile` (locustfiles/smtp.py) with its web UI on 127.0.0.1 (port 0), and `workers`
    workers; yields the UI's URL."""
    command = [sys.executable, "-m", "locust", "-f", locustfile, "-H", host, "--web-host", "127.0.0.1",
               "--web-port", "0", "--results", str(results), "--run-time", RUN_TIME_BOUND, *options]
    if workers:
        command += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", "0"]
    main = WatchedProcess("locust web UI", command, stop_signal=signal.SIGTERM, expected_status=expected_status)
    processes = [main]
    with watching(processes, timeout=60):
        port = _web_port(main, 2 if workers else 1)
        if workers:
            master_port = next(iter(_listening_ports(main.pid) - {port}))
            for index in range(workers):
                processes.append(WatchedProcess(
                    f"locust --worker {index}",
                    [sys.executable, "-m", "locust", "-f", locustfile, "--worker", "--master-host", "127.0.0.1",
                     "--master-port", str(master_port)],
                    stop_signal=signal.SIGTERM))
        yield f"http://127.0.0.1:{port}"


def wait_for_state(url: str, state: str, timeout: float = WAIT) -> None:
    """Until Locust's state is `state` (a quit while users are still stopping makes Locust log a traceback).
    After Stop the stats answer waits for the results folder, the end-to-end drain included."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/stats/requests", timeout=max(deadline - time.monotonic(), 1)) as response:
            if json.loads(response.read())["state"] == state:
                return
        time.sleep(0.2)
    raise AssertionError(f"Locust was not {state} within {timeout} s")


def wait_for_workers(url: str, count: int, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/stats/requests", timeout=10) as response:
            if json.loads(response.read()).get("worker_count") == count:
                return
        time.sleep(0.2)
    raise AssertionError(f"{count} workers did not connect within {timeout} s")


def mail_rows(page) -> list[dict]:
    """The Mail tab's table as the page shows it: one dict per row, by column title."""
    return page.evaluate("""() => {
        const table = document.querySelector("table");
        if (!table) return [];
        const heads = [...table.querySelectorAll("thead th")].map(th => th.textContent.trim());
        return [...table.querySelectorAll("tbody tr")].map(tr =>
            Object.fromEntries([...tr.cells].map((td, i) => [heads[i], td.textContent.trim()])));
    }""")


def count_of(rows, section: str, item: str) -> int | None:
    for row in rows:
        if row["Section"] == section and row["What"] == item and row["Count"]:
            return int(row["Count"])
    return None


def wait_for_rows(page, condition, what: str, timeout: float = WAIT) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows = []
    while time.monotonic() < deadline:
        rows = mail_rows(page)
        if condition(rows):
            return rows
        page.wait_for_timeout(500)
    raise AssertionError(f"the Mail tab never showed {what}; last rows: {rows}")


def start_from_the_form(page, url: str, users: int) -> None:
    page.goto(url)
    page.fill("input[name=userCount]", str(users))
    page.fill("input[name=spawnRate]", str(users))
    page.get_by_role("button", name="Custom parameters").click()
    page.fill("input[name=messageSize]", "2048")
    page.fill("input[name=check]", THRESHOLD)
    page.click("button[type=submit]")


def watch_the_mail_tab_then_stop(page, report_while_running: str = "") -> list[dict]:
    """Open the Mail tab, see phases, replies by code and the sink's counters move, stop; the rows at the end.

    With `report_while_running` (the report link's URL), the report is asked for before the stop."""
    page.get_by_role("tab", name="Mail").click()
    rows = wait_for_rows(
        page, lambda rows: count_of(rows, "reply", "550 at rcpt") and count_of(rows, "sink", "messages")
        and count_of(rows, "phase", "connect"), "phases, a 550 at RCPT and the sink's counters")
    phases = [row["What"] for row in rows if row["Section"] == "phase"]
    assert phases == sorted(phases, key=PHASES.index), phases
    assert {"connect", "banner", "helo", "envelope", "end-of-data"} <= set(phases)
    first = count_of(rows, "sink", "messages")
    wait_for_rows(page, lambda rows: (count_of(rows, "sink", "messages") or 0) > first, "the sink's counters move")
    if report_while_running:
        with urllib.request.urlopen(report_while_running, timeout=WAIT) as response:  # what is recorded so far
            assert response.status == 200 and b"SMTP send" in response.read()
    page.get_by_role("button", name="Stop").click()

    def settled(rows, last=[None]):  # noqa: B006 - the previous reading, between calls
        reading = (count_of(rows, "reply", "2xx at end-of-data"), count_of(rows, "sink", "messages"),
                   count_of(rows, "reply", "550 at rcpt"), count_of(rows, "sink", "reply 550"))
        same, last[0] = reading == last[0], reading
        return same and reading[0] == reading[1] and reading[2] == reading[3]

    return wait_for_rows(page, settled, "the run's final counts, equal to the sink's")


def follow_the_report_link(page, results: Path) -> None:
    with page.context.expect_page(timeout=WAIT * 1000) as opened:
        page.click("#loadkit-links >> text=Report")
    report = opened.value
    report.wait_for_load_state(timeout=WAIT * 1000)
    assert "SMTP send" in report.inner_text("body")
    assert report.url.endswith("/loadkit/report")
    report.close()
    (folder,) = [path for path in results.iterdir() if path.is_dir()]
    assert (folder / "report.html").is_file()
    # The form's threshold is checked once the folder is complete: on a master, after the workers' final reports.
    deadline = time.monotonic() + WAIT
    while not (folder / "verdicts.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (folder / "verdicts.json").is_file(), sorted(path.name for path in folder.iterdir())


def see_the_console_charts(page, url: str) -> None:
    console = page.context.new_page()
    errors = []
    console.on("pageerror", lambda error: errors.append(str(error)))
    console.goto(f"{url}/loadkit/mail")
    console.wait_for_selector(f'line[data-threshold="{THRESHOLD}"]', state="attached", timeout=WAIT * 1000)
    assert console.locator("polyline").count() >= 3
    assert console.get_by_text("replies per second by code and phase").count() == 1
    assert console.locator('polyline[data-series="550 at rcpt"]').count() == 1
    console.close()
    assert errors == []


def test_a_run_from_the_form_shows_the_mail_tab_and_ends_equal_to_the_sink(chromium, tmp_path):
    control = f"127.0.0.1:{free_port()}"
    with loadkit_sink(tmp_path, *SINK_FAULTS, "--control", control) as (sink_url, read_stats):
        results = tmp_path / "reports"
        # 5% of recipients refused: Locust counts failures, so its exit status is 1
        with locust_web_ui(results, sink_url, ["--sink-control", control], expected_status=1) as url:
            page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            start_from_the_form(page, url, users=4)
            rows = watch_the_mail_tab_then_stop(page, report_while_running=f"{url}/loadkit/report")
            wait_for_state(url, "stopped")
            see_the_console_charts(page, url)
            follow_the_report_link(page, results)
            with urllib.request.urlopen(f"{url}/loadkit/results.zip", timeout=WAIT) as response:
                names = zipfile.ZipFile(io.BytesIO(response.read())).namelist()
            assert {"metrics.jsonl", "run.json", "report.html"} <= {name.split("/", 1)[1] for name in names}
            page.close()
            assert errors == []
        stats = read_stats()
    assert count_of(rows, "reply", "2xx at end-of-data") == stats["messages"]
    assert count_of(rows, "sink", "messages") == stats["messages"]
    assert count_of(rows, "sink", "sessions") == stats["sessions"]
    assert count_of(rows, "reply", "550 at rcpt") == stats["replies"]["550"]
    assert count_of(rows, "phase", "connect") == stats["sessions"]
    assert count_of(rows, "message", "SMTP send") == stats["messages"] + stats["replies"]["550"]


def test_a_master_and_two_workers_show_each_worker_and_merged_counts_equal_to_the_sink(chromium, tmp_path):
    control = f"127.0.0.1:{free_port()}"
    with loadkit_sink(tmp_path, *SINK_FAULTS, "--control", control) as (sink_url, read_stats):
        results = tmp_path / "reports"
        with locust_web_ui(results, sink_url, ["--sink-control", control], workers=2, expected_status=1) as url:
            page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
            wait_for_workers(url, 2)
            start_from_the_form(page, url, users=4)
            rows = watch_the_mail_tab_then_stop(page)
            wait_for_state(url, "stopped")
            workers = [row for row in rows if row["Section"] == "worker"]
            assert len(workers) == 2, workers
            assert all(int(row["Count"]) > 0 for row in workers)
            assert sum(int(row["Count"]) for row in workers) == count_of(rows, "message", "SMTP send")
            follow_the_report_link(page, results)
            page.close()
        stats = read_stats()
    assert count_of(rows, "reply", "2xx at end-of-data") == stats["messages"]
    assert count_of(rows, "sink", "messages") == stats["messages"]
    assert count_of(rows, "reply", "550 at rcpt") == stats["replies"]["550"]
    assert count_of(rows, "phase", "connect") == stats["sessions"]


def test_a_host_the_users_cannot_use_is_refused_in_the_form_and_nothing_starts(chromium, tmp_path):
    control = f"127.0.0.1:{free_port()}"
    results = tmp_path / "reports"
    with loadkit_sink(tmp_path, "--control", control) as (sink_url, read_stats):
        with locust_web_ui(results, sink_url, ["--sink-control", control]) as url:
            page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(url)
            for host, reason in (("smtp://no-such-host.invalid:25", "loadkit: unknown host 'no-such-host.invalid'"),
                                 ("lmtp://127.0.0.1:24", "loadkit: MailSender speaks SMTP but the host is lmtp://")):
                page.fill("input[name=host]", host)
                page.click("button[type=submit]")
                page.get_by_text(reason).wait_for(timeout=WAIT * 1000)
                with urllib.request.urlopen(f"{url}/stats/requests", timeout=10) as response:
                    assert json.loads(response.read())["state"] == "ready"
            assert page.get_by_role("button", name="Start").is_visible()
            page.close()
        stats = read_stats()
    assert stats["sessions"] == 0
    assert not results.exists() or not any(results.iterdir())


def test_a_run_whose_every_transaction_fails_says_so_first(chromium, tmp_path):
    control = f"127.0.0.1:{free_port()}"
    with loadkit_sink(tmp_path, "--reject", "mail:421", "--control", control) as (sink_url, read_stats):
        with locust_web_ui(tmp_path / "reports", sink_url, ["--sink-control", control], expected_status=1) as url:
            page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(url)
            page.fill("input[name=userCount]", "2")
            page.fill("input[name=spawnRate]", "2")
            page.click("button[type=submit]")
            page.get_by_role("tab", name="Mail").click()
            rows = wait_for_rows(page, lambda rows: rows and rows[0]["Section"] == "ALERT", "the alert first")
            page.get_by_role("button", name="Stop").click()
            wait_for_state(url, "stopped")
            page.close()
        stats = read_stats()
    assert rows[0]["What"] == "every transaction failed"
    assert "421" in rows[0]["Detail"] and "at MAIL" in rows[0]["Detail"], rows[0]
    assert stats["messages"] == 0
