"""``--probe apache=STATUS_URL`` on a headless run of locustfiles/apache.py against a real Apache.

Apache is the peer (``loadkit.instances.Apache``, mod_status): the probe's rows
carry its busy and idle workers and a request rate that is above zero while
the load runs, and the accesses it saw fit what Locust sent. A probe pointed
at a refused port says so once (one event, one log line) and the run succeeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.instances import Apache
from tests.conftest import refused_port
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)

pytestmark = pytest.mark.peer("apache2")

LOCUSTFILE = Path(__file__).resolve().parents[2] / "locustfiles" / "apache.py"


@pytest.fixture
def apache(peer, instance_root):
    peer("apache2")
    with Apache(instance_root / "apache") as instance:
        yield instance


def run_with_probe(host: str, status_url: str, results: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "-H", host, "--headless",
               "-u", "4", "-r", "4", "-t", "3s", "--only-summary", "--results", str(results),
               "--probe", f"apache={status_url}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def read_folder(results: Path) -> tuple[dict, list[dict], list[dict]]:
    (folder,) = results.iterdir()
    run = json.loads((folder / "run.json").read_text())
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    probes = [json.loads(line) for line in (folder / "probes.jsonl").read_text().splitlines()]
    return run, events, probes


def test_probe_samples_apache_workers_and_request_rate_during_the_load(apache, tmp_path):
    result = run_with_probe(apache.base_url, apache.status_url, tmp_path / "results")
    assert result.returncode == 0, result.stderr[-2000:]
    run, events, probes = read_folder(tmp_path / "results")
    assert run["requests"] > 0 and run["failures"] == 0
    assert not [e for e in events if e["kind"] == "probe_failed"]

    rows = [row for row in probes if row["probe"] == "apache"]
    assert len(rows) >= 3, rows  # one a second for 3 s, and one at the end
    for row in rows:
        assert "error" not in row, row
        # The status page is being served by a busy worker as it is made.
        assert isinstance(row["busy_workers"], int) and row["busy_workers"] >= 1, row
        assert isinstance(row["idle_workers"], int) and row["idle_workers"] >= 0, row
        assert row["scoreboard_sending"] >= 1, row
    started = next(e["time"] for e in events if e["kind"] == "run_started")
    stopped = next(e["time"] for e in events if e["kind"] == "run_stopped")
    during = [row for row in rows if started < row["time"] <= stopped and "requests_per_s" in row]
    assert during and all(row["requests_per_s"] > 0 for row in during), during

    # What Apache counted between the first and the last sample came from Locust's
    # requests and the probe's own status pages, nothing else.
    counted = rows[-1]["total_accesses"] - rows[0]["total_accesses"]
    assert 0 < counted <= run["requests"] + len(rows)
    rate_sum = sum(row["requests_per_s"] * (b["time"] - a["time"])
                   for a, b, row in zip(rows, rows[1:], rows[1:]))
    assert rate_sum == pytest.approx(counted, rel=0.1)


def test_probe_at_a_refused_port_says_so_once_and_the_run_succeeds(apache, tmp_path):
    with refused_port() as port:
        refused = f"http://127.0.0.1:{port}/server-status"
        result = run_with_probe(apache.base_url, refused, tmp_path / "results")
    assert result.returncode == 0, result.stderr[-2000:]
    run, events, probes = read_folder(tmp_path / "results")
    assert run["requests"] > 0 and run["failures"] == 0

    failed = [e for e in events if e["kind"] == "probe_failed"]
    assert len(failed) == 1, failed
    assert failed[0]["detail"].startswith(f"apache: {refused}?auto: ") and "refused" in failed[0]["detail"]
    log_lines = [line for line in result.stderr.splitlines() if "loadkit probe apache:" in line]
    assert len(log_lines) == 1 and "refused" in log_lines[0], result.stderr[-2000:]
    (row,) = probes  # the failure, once; no sample rows
    assert row["probe"] == "apache" and "refused" in row["error"]
