"""A saturated load generator, for real: a headless Locust run whose user burns CPU,
on a machine whose every core is kept busy by burners (niced, bounded in time).

Locust's own CPU warning must become a `generator_cpu_high` event, the host
probe must see the machine saturated (`host_cpu_saturated`), the report's
integrity section must show both, and the run's checks must fail on them
(`generator_ok`) though the threshold asked for passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.test_metrics_locust_headless import only_folder
from tests.unit.test_report import read_tables

pytestmark = pytest.mark.slow

LOCUSTFILE = Path(__file__).with_name("cpu_burning_locustfile.py")
BURN_FOR = 20  # seconds at most, whatever happens to the test
BURNER = f"import os, time\nos.nice(19)\nend = time.time() + {BURN_FOR}\nwhile time.time() < end:\n    pass\n"
# Ahead of the burners and of whatever else runs on the machine, so that its own user, not its
# neighbours, decides the Locust process's CPU. Linux shares CPU between sessions (autogroups)
# before it looks at nice values: the run gets a session of its own, raised (root only).
GENERATOR_NICE = -10


def _ahead_of_others() -> None:
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(GENERATOR_NICE))
    except OSError:
        try:
            os.nice(GENERATOR_NICE)
        except OSError:
            pass  # not root: the run competes as it is


@contextmanager
def every_core_busy():
    """One niced busy loop per core: the machine saturated, the Locust process still first in line."""
    burners = [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(10)


def test_a_saturated_generator_is_recorded_shown_and_fails_the_checks(tmp_path):
    with every_core_busy():
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1", "-r", "1", "-t", "6s",
             "--only-summary", "--results", str(tmp_path / "results"), "--probe", "host", "--check", "requests>0"],
            capture_output=True, text=True, timeout=120, check=False, start_new_session=True,
            preexec_fn=_ahead_of_others,
        )
    assert "CPU usage above 90%" in result.stderr, result.stderr[-3000:]  # Locust's own warning fired
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    folder = only_folder(tmp_path / "results")
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    kinds = [event["kind"] for event in events]
    assert "generator_cpu_high" in kinds and "host_cpu_saturated" in kinds, kinds
    (first,) = [e for e in events if e["kind"] == "generator_cpu_high"][:1]
    assert first["time"] > events[0]["time"] and "%" in first["detail"]

    assert result.returncode == 3, result.stdout[-2000:]  # requests>0 passed, generator_ok did not
    verdicts = {v["expression"]: v for v in json.loads((folder / "verdicts.json").read_text())["verdicts"]}
    assert verdicts["requests>0"]["passed"] is True
    assert verdicts["generator_ok"]["passed"] is False and "generator_cpu_high" in verdicts["generator_ok"]["detail"]

    checked = subprocess.run([sys.executable, "-m", "loadkit", "check", str(folder), "--check", "requests>0"],
                             capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 3 and "FAILED  generator_ok" in checked.stdout, checked.stdout

    report = subprocess.run([sys.executable, "-m", "loadkit", "report", str(folder), "-o", str(tmp_path / "r.html")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    shown = {row["Event"] for row in read_tables(page)["events"]}
    assert {"generator_cpu_high", "host_cpu_saturated"} <= shown
    assert "Nothing happened that would make the numbers doubtful" not in page
