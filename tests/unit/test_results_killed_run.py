"""A real Locust run killed with SIGKILL: no run.json, no run_stopped. The reader calls it
incomplete; `loadkit check` fails it whatever was asked, and the report says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.unit.test_report import read_tables

LOCUSTFILE = textwrap.dedent(
    """
    import gevent
    from locust import User, constant, task

    import loadkit.users  # noqa: F401 - loadkit's results folder and --check on the locust command line

    class SteadyUser(User):
        wait_time = constant(0)

        @task
        def send(self):
            gevent.sleep(0.01)
            self.environment.events.request.fire(request_type="SMTP", name="send", response_time=10.0,
                                                 response_length=100, exception=None, context={})
    """
)
KILL_AFTER_INTERVALS = 2
WAIT_LIMIT = 60.0  # seconds for the run to write its first intervals


def loadkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadkit", *args], capture_output=True, text=True, timeout=120)


def test_a_run_killed_with_sigkill_is_incomplete_in_check_and_report(tmp_path):
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    command = [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "-u", "2", "-r", "2",
               "-t", "60s", "--only-summary", "--results", "results"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                      os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        metrics = None
        while time.monotonic() < deadline and process.poll() is None:
            found = list((tmp_path / "results").glob("*/metrics.jsonl"))
            if found and found[0].read_bytes().count(b"\n") >= KILL_AFTER_INTERVALS:
                metrics = found[0]
                break
            time.sleep(0.1)
        assert metrics is not None, process.stderr.read().decode()[-2000:] if process.poll() is not None else "no intervals"
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    folder = metrics.parent
    assert not (folder / "run.json").exists()

    check = loadkit("check", str(folder), "--check", "no_worker_lost", "--check", "p95<1s")
    assert (check.returncode, check.stderr) == (3, ""), check.stdout
    lines = check.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["PASSED", "PASSED", "FAILED"]  # the run's numbers are fine
    assert lines[3].split()[1] == "run_complete"
    assert any(line.startswith("run_complete: no run.json and no run_stopped event") for line in lines)
    assert lines[-1] == "thresholds: 2 of 3 passed"

    asked = loadkit("check", str(folder), "--check", "run_complete")
    assert asked.returncode == 3 and "thresholds: 0 of 1 passed" in asked.stdout

    report = loadkit("report", str(folder), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    events = read_tables(page)["events"]
    kinds = [row["Event"] for row in events]  # a busy machine may add cpu_high between them
    assert kinds[0] == "run_started" and kinds[-1] == "run_incomplete" and "run_stopped" not in kinds
    assert events[-1]["Detail"].startswith("no run.json and no run_stopped event")
    assert "Nothing happened that would make the numbers doubtful" not in page
    assert "the numbers may be off" in page
