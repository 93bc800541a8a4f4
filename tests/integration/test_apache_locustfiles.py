"""`locustfiles/apache.py` and `locustfiles/mail_and_web.py` headless against a real Apache.

Apache is the peer: what Locust counted must be what Apache's access log and
mod_status counted, request for request; a missing file must come back as
failures with HTTP status 404 in the results folder and the report. The
mixed locustfile loads `loadkit sink` and Apache at once. `ab`, the other
side of bench/apache_bench.py, must be installed and talk to the instance.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from loadkit.instances import Apache, parse_server_status
from loadkit.report import load_run
from tests.integration.peers import loadkit_sink
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)

LOCUSTFILES = Path(__file__).resolve().parents[2] / "locustfiles"
PATHS = {"/1k.bin", "/10k.bin", "/100k.bin", "/1m.bin", "/cgi-bin/hello"}
LOG_REQUEST = re.compile(r'"GET (\S+) HTTP/1\.[01]" (\d{3}) ')


@pytest.fixture
def apache(peer, instance_root):
    peer("apache2")
    with Apache(instance_root / "apache") as instance:
        yield instance


def run_locust(locustfile: Path, host: str, results: Path, *extra: str, seconds: int = 3, env=None):
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), "-H", host, "--headless",
               "-u", "4", "-r", "4", "-t", f"{seconds}s", "--only-summary", "--results", str(results), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def only_folder(results: Path) -> Path:
    (folder,) = results.iterdir()
    return folder


def locust_rows(folder: Path) -> dict[tuple[str, str], dict]:
    with open(folder / "locust_stats.csv", newline="") as handle:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(handle)}


def recorded(folder: Path) -> dict[tuple[str, str], list[int]]:
    """(type, name) -> [ok, failed] summed over metrics.jsonl's intervals."""
    counts: dict[tuple[str, str], list[int]] = {}
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        for series in json.loads(line)["series"]:
            if series["kind"] == "request":
                ok_failed = counts.setdefault((series["type"], series["name"]), [0, 0])
                ok_failed[0] += series["ok"]
                ok_failed[1] += series["failed"]
    return counts


def logged_requests(apache: Apache) -> list[tuple[str, str]]:
    """(path without query, status) of each request in Apache's access log, status pages left out."""
    requests = []
    for line in apache.access_log_path.read_text().splitlines():
        match = LOG_REQUEST.search(line)
        assert match, f"unexpected access log line: {line!r}"
        path = match.group(1).split("?", 1)[0]
        if path != "/server-status":
            requests.append((path, match.group(2)))
    return requests


def settled_log(apache: Apache, expected: int, timeout: float = 5.0) -> list[tuple[str, str]]:
    """Apache writes a log line after the response went out: wait for `expected` lines, bounded."""
    deadline = time.monotonic() + timeout
    while True:
        requests = logged_requests(apache)
        if len(requests) >= expected or time.monotonic() > deadline:
            return requests
        time.sleep(0.05)


def total_accesses(apache: Apache) -> int:
    with urllib.request.urlopen(apache.status_url, timeout=10) as response:
        return parse_server_status(response.read().decode())["Total Accesses"]


@pytest.mark.peer("apache2")
def test_locust_counts_what_apache_logged_and_mod_status_counted(apache, tmp_path):
    before = total_accesses(apache)
    result = run_locust(LOCUSTFILES / "apache.py", apache.base_url, tmp_path / "results",
                        "--check", "fail_ratio==0")
    assert result.returncode == 0, result.stderr[-2000:]
    folder = only_folder(tmp_path / "results")
    assert folder.name.endswith("-apache")

    rows = locust_rows(folder)
    locust_total = int(rows[("", "Aggregated")]["Request Count"])
    by_path = {name: int(row["Request Count"]) for (kind, name), row in rows.items() if kind == "GET"}
    assert set(by_path) == PATHS  # named by path: the CGI's changing query string is grouped away
    assert locust_total == sum(by_path.values()) > 100
    assert recorded(folder) == {("GET", path): [count, 0] for path, count in by_path.items()}

    logged = settled_log(apache, locust_total)
    assert len(logged) == locust_total
    assert {path: sum(1 for p, _ in logged if p == path) for path in PATHS} == by_path
    assert {status for _, status in logged} == {"200"}

    # mod_status counts a request once its response is out: the first status
    # page is in the delta, and so is every earlier poll of this loop.
    status_pages, deadline = 1, time.monotonic() + 5
    while (delta := total_accesses(apache) - before - status_pages) < locust_total and time.monotonic() < deadline:
        status_pages += 1
        time.sleep(0.05)
    assert delta == locust_total


@pytest.mark.peer("apache2")
def test_a_missing_file_is_a_failure_with_status_404(apache, tmp_path):
    locustfile = tmp_path / "missing_file.py"
    locustfile.write_text(
        "import apache\n\n"
        "class MissingFileUser(apache.KeepAliveWebUser):\n"
        "    small_file = '/missing.bin'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LOCUSTFILES), os.environ.get("PYTHONPATH", "")])}
    result = run_locust(locustfile, apache.base_url, tmp_path / "results", seconds=2, env=env)
    assert result.returncode == 1, result.stderr[-2000:]  # Locust's exit status when requests failed
    folder = only_folder(tmp_path / "results")

    rows = locust_rows(folder)
    missing = rows[("GET", "/missing.bin")]
    failures = int(missing["Failure Count"])
    assert failures == int(missing["Request Count"]) > 0
    assert int(rows[("", "Aggregated")]["Failure Count"]) == failures

    with open(folder / "errors.csv", newline="") as handle:
        errors = list(csv.DictReader(handle))
    assert [(e["name"], e["code"], int(e["count"])) for e in errors] == [("/missing.bin", "404", failures)]

    logged = settled_log(apache, int(rows[("", "Aggregated")]["Request Count"]))
    assert sum(1 for path, status in logged if (path, status) == ("/missing.bin", "404")) == failures
    assert {status for path, status in logged if path != "/missing.bin"} == {"200"}

    run = load_run(folder)  # the report's failures-by-code chart reads the status as the code
    assert [c for c in run.reply_codes.columns if c != "elapsed"] == ["404"]


@pytest.mark.peer("apache2")
def test_mail_and_web_users_in_one_run(apache, tmp_path):
    env = {**os.environ, "LOADKIT_WEB_HOST": apache.base_url}
    with loadkit_sink(tmp_path) as (url, read_stats):
        result = run_locust(LOCUSTFILES / "mail_and_web.py", url, tmp_path / "results", seconds=2, env=env)
        sink = read_stats()
    assert result.returncode == 0, result.stderr[-2000:]
    folder = only_folder(tmp_path / "results")
    counts = recorded(folder)
    web = {name: ok for (kind, name), (ok, failed) in counts.items() if kind == "GET" and not failed}
    assert counts[("SMTP", "send")] == [sink["messages"], 0] and sink["messages"] > 0
    assert set(web) <= PATHS and "/1k.bin" in web
    assert len(counts) == len(web) + 1  # nothing failed, nothing else sent
    assert len(settled_log(apache, sum(web.values()))) == sum(web.values())
    run = json.loads((folder / "run.json").read_text())
    assert set(run["user_classes"]) == {"MailUser", "MixedWebUser"}


def test_mixed_run_without_a_web_host_is_one_line_error(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "LOADKIT_WEB_HOST"}
    result = run_locust(LOCUSTFILES / "mail_and_web.py", "smtp://127.0.0.1:1", tmp_path / "results", seconds=1, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "set LOADKIT_WEB_HOST=http://host:port" in result.stderr.strip().splitlines()[-1]


@pytest.mark.peer("apache2")
@pytest.mark.peer("ab")
def test_ab_is_installed_and_counted_by_apache(apache, peer):
    ab = peer("ab")
    result = subprocess.run([ab, "-k", "-c", "2", "-n", "20", apache.base_url + "/10k.bin"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert re.search(r"Complete requests:\s+20\n", result.stdout)
    assert re.search(r"Failed requests:\s+0\n", result.stdout)
    assert settled_log(apache, 20) == [("/10k.bin", "200")] * 20
