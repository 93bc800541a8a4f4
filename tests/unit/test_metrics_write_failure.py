"""A results file that stops taking writes (ENOSPC) mid-run: the recorder stops writing, once.

The disk is simulated here (a file that fails after its first line); the
integration test `test_full_disk` fills a real tmpfs.
"""

from __future__ import annotations

import errno
import json
import logging

from loadkit.metrics._recorder import RequestRecorder
from loadkit.metrics._run import RunRecorder
from loadkit.results import ResultsError
from tests.unit.test_metrics_recorder import environment, fire, locust_total


class FillingFile:
    """A real file that takes `lines` lines, then fails as a full disk does."""

    def __init__(self, real, lines: int):
        self.real, self.lines, self.name = real, lines, real.name

    def write(self, text: str) -> int:
        if self.lines <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.lines -= 1
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()

    def close(self) -> None:
        self.real.close()


def recorder_with_a_disk_that_fills(tmp_path, metrics_lines: int, **options) -> tuple:
    locust = environment(users=3)
    run = RunRecorder(locust, tmp_path, RequestRecorder(), **options)
    run._metrics_out = run.store.out = FillingFile(run._metrics_out, metrics_lines)
    run.start(ticking=False)
    run.current_start -= 10  # intervals that ended in the past: each tick writes at once
    return locust, run


def test_the_first_failed_write_is_reported_once_and_nothing_is_written_after(tmp_path):
    failures = []
    locust, run = recorder_with_a_disk_that_fills(tmp_path, 1, on_write_failure=failures.append)
    first = run.current_start
    fire(locust.events.request.fire, 10)
    run.tick(first + 1)  # written
    fire(locust.events.request.fire, 20)
    run.tick(first + 2)  # the disk is full
    fire(locust.events.request.fire, 30)
    run.tick(first + 3)
    run.add_worker_report("w1", {"events": [{"kind": "cpu_high", "detail": "x"}]})
    facts = run.stop(locust_total=locust_total(60, 0))

    assert len(failures) == 1 and isinstance(failures[0], ResultsError)
    assert str(failures[0]) == f"cannot write {tmp_path / 'metrics.jsonl'}: No space left on device"
    assert run.write_failure is failures[0]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["series"][0]["ok"] == 10  # readable, as written
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert kinds == ["run_started"]  # no run_stopped: the run reads as incomplete
    assert not (tmp_path / "errors.csv").exists()
    assert facts["stopped_at"] is not None


def test_without_a_callback_the_failure_is_one_log_line_and_the_run_goes_on(tmp_path, caplog):
    locust, run = recorder_with_a_disk_that_fills(tmp_path, 0)
    first = run.current_start
    with caplog.at_level(logging.ERROR, logger="loadkit.metrics._run"):
        for second in range(1, 4):
            fire(locust.events.request.fire, 5)
            run.tick(first + second)
        run.stop()
    expected = (f"loadkit: cannot write {tmp_path / 'metrics.jsonl'}: No space left on device; "
                "recording stopped there (the load goes on)")
    assert [record.getMessage() for record in caplog.records] == [expected]
    assert run.write_failure is not None
