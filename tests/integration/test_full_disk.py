"""A full disk under a run: a real tmpfs of 32 KiB that the run fills within seconds.

`loadkit demo` stops the load at the first failed write, with one line
saying which file could not be written; what was written before stays
readable (at most its last line cut), the run is incomplete (no
run_stopped, no run.json) and the exit status is non-zero. Locust's count
and the sink's still agree. A `locust` run with loadkit's results folder
goes on unrecorded, says so in one line each time, and exits non-zero.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from loadkit.results import METRICS_FILE, RUN_FILE, Notes, incomplete_run, read_events, read_intervals
from tests.conftest import cannot_run, require_root
from tests.integration.peers import loadkit_sink

DURATION = 30  # seconds asked for; the disk is full long before


@pytest.fixture
def small_disk():
    """A 32 KiB tmpfs, unmounted afterwards."""
    require_root("mounting a tmpfs")
    where = Path(tempfile.mkdtemp(prefix="loadkit-full-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(where)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        where.rmdir()
        cannot_run(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True, check=False)
        shutil.rmtree(where, ignore_errors=True)


def test_a_full_disk_stops_the_load_in_one_line_and_keeps_what_was_written(small_disk):
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "demo", "--duration", str(DURATION), "--users", "4", "--out", str(small_disk)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    said = re.match(r"loadkit demo: error: cannot write (\S+): No space left on device: "
                    r"the load was stopped after ([\d.]+) s; what was written before is readable in (\S+) ", lines[0])
    assert said, lines[0]
    assert float(said.group(2)) < DURATION
    folder = Path(said.group(3))
    assert folder.parent == small_disk and Path(said.group(1)).parent == folder

    counted = re.search(r"Locust counted (\d+) messages \((\d+) failed\); the sink received (\d+)", result.stdout)
    assert counted and int(counted.group(1)) == int(counted.group(3)) > 0 and counted.group(2) == "0", result.stdout

    notes = Notes()
    intervals = [interval for _number, interval in read_intervals(folder, notes)]
    assert intervals, "nothing readable was left in metrics.jsonl"
    assert notes.damaged_lines(METRICS_FILE) <= 1  # at most the line the disk cut
    events = read_events(folder, notes)
    assert [event["kind"] for event in events][:1] == ["run_started"]
    assert not (folder / RUN_FILE).exists() and not (folder / "report.html").exists()
    assert incomplete_run(folder, events, notes) is not None


def test_a_locust_run_on_a_full_disk_says_so_without_a_traceback(small_disk, tmp_path):
    with loadkit_sink(tmp_path) as (url, _read_stats):
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(Path("locustfiles", "smtp.py").absolute()), "-H", url,
             "--headless", "-u", "3", "-r", "3", "-t", "10s", "--results", str(small_disk)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output and "Uncaught exception" not in output, output[-3000:]
    folder = next(small_disk.iterdir())
    recording = f"loadkit: cannot write {folder / METRICS_FILE}: No space left on device"
    assert output.count(f"{recording}; recording stopped there (the load goes on)") == 1, output[-3000:]
    assert output.count(f"{recording}; no {RUN_FILE} written: the run is incomplete") == 1, output[-3000:]
    assert not (folder / RUN_FILE).exists()
