"""``loadkit check`` in-process (table, files, exit codes), and ``--check`` at the end of a Locust test, after the finishers."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import gevent
import gevent.event
import pytest

from loadkit import check
from loadkit.errors import UsageError
from loadkit.results import write_e2e
from loadkit.thresholds import ThresholdError, parse_all
from tests.unit.test_thresholds_e2e import finished_folder


def arguments(*argv):
    parser = argparse.ArgumentParser()
    check.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_command_prints_the_table_writes_the_files_and_exits_0_or_3(tmp_path, capsys):
    folder = finished_folder(tmp_path)
    json_path, junit_path = tmp_path / "v.json", tmp_path / "v.xml"
    assert check.run(arguments(str(folder), "--check", "requests==100", "--json", str(json_path),
                               "--junit", str(junit_path))) == 0
    out = capsys.readouterr().out
    assert "PASSED  requests==100" in out and out.rstrip().endswith("thresholds: 1 of 1 passed")
    assert json.loads(json_path.read_text())["passed"] is True and junit_path.is_file()
    assert check.run(arguments(str(folder), "--check", "requests==100", "--check", "requests>100")) == 3
    assert "FAILED  requests>100" in capsys.readouterr().out
    assert not (folder / "verdicts.json").exists()  # the command writes only where it is told


def test_the_command_refuses_bad_input_in_one_line(tmp_path):
    folder = finished_folder(tmp_path)
    with pytest.raises(ThresholdError):
        check.run(arguments(str(folder), "--check", "p95<<1"))
    with pytest.raises(UsageError, match=r"^cannot write .*no-such-dir.*: No such file or directory$"):
        check.run(arguments(str(folder), "--check", "requests==100", "--json", str(tmp_path / "no-such-dir" / "v.json")))
    with pytest.raises(UsageError, match="cannot write"):
        check.run(arguments(str(folder), "--check", "requests==100", "--junit", str(tmp_path / "no-such-dir" / "v.xml")))
    with pytest.raises(SystemExit):
        arguments(str(folder))  # --check is required


class Hook:
    """Locust's EventHook, as far as the listeners use it: called in the order added."""

    def __init__(self):
        self.listeners = []

    def add_listener(self, listener):
        self.listeners.append(listener)

    def fire(self, **kwargs):
        for listener in list(self.listeners):
            listener(**kwargs)


class FakeResults:
    """The results folder's collaborator: written at test_stop (a local runner) or later (a master)."""

    def __init__(self, folder, written_at_stop=True):
        self.folder, self.written, self.waiting = folder, written_at_stop, []
        self.finishers = []

    def checks(self, environment):
        return parse_all(environment.parsed_options.check)

    def when_finished(self, environment, callback):
        assert environment.events is not None  # the test's environment, whose folder it is
        if self.written:
            callback(self.folder)
        else:
            self.waiting.append(callback)

    def wait_for_finishers(self, environment):
        gevent.joinall(self.finishers)

    def finish(self):
        self.written = True
        for callback in self.waiting:
            callback(self.folder)


def locust_environment(checks):
    events = SimpleNamespace(init=Hook(), test_stop=Hook())
    return SimpleNamespace(events=events, parsed_options=SimpleNamespace(check=checks), process_exit_code=None)


def test_checks_run_after_the_finishers_registered_before_them(tmp_path, capsys):
    folder = finished_folder(tmp_path)
    environment = locust_environment(["e2e.delivered==20", "e2e.lost==0"])

    def drain(**_kwargs):  # a finisher whose listener is added at init before the checks': the e2e drain
        write_e2e(folder, {"accepted": 20, "delivered": 20, "lost": 0, "duplicated": 0, "unexpected": 0})

    environment.events.init.add_listener(lambda **_: environment.events.test_stop.add_listener(drain))
    check.register_checks(environment.events, FakeResults(folder))
    environment.events.init.fire(environment=environment, runner=None)
    environment.events.test_stop.fire(environment=environment)

    verdicts = json.loads((folder / "verdicts.json").read_text())["verdicts"]
    assert [(v["expression"], v["status"], v["measured"]) for v in verdicts] == [
        ("e2e.delivered==20", "passed", 20), ("e2e.lost==0", "passed", 0)]
    assert (folder / "junit.xml").is_file() and "thresholds: 2 of 2 passed" in capsys.readouterr().out
    assert environment.process_exit_code is None


def test_a_failed_check_makes_the_exit_code_3_once_the_folder_is_written(tmp_path):
    folder = finished_folder(tmp_path)
    environment = locust_environment(["requests>100"])
    results = FakeResults(folder, written_at_stop=False)  # a master writes its folder after its workers' reports
    check.register_checks(environment.events, results)
    environment.events.init.fire(environment=environment, runner=None)
    environment.events.test_stop.fire(environment=environment)
    assert environment.process_exit_code is None and not (folder / "verdicts.json").exists()
    results.finish()
    assert environment.process_exit_code == 3
    assert json.loads((folder / "verdicts.json").read_text())["passed"] is False


def test_checks_wait_for_a_finisher_still_running_when_the_folder_is_written(tmp_path):
    folder = finished_folder(tmp_path)
    environment = locust_environment(["e2e.delivered==20"])
    results = FakeResults(folder, written_at_stop=False)
    release = gevent.event.Event()

    def drain():  # a master's: beside its stop, outlasting the folder's writing
        release.wait()
        write_e2e(folder, {"accepted": 20, "delivered": 20, "lost": 0, "duplicated": 0, "unexpected": 0})

    check.register_checks(environment.events, results)
    environment.events.init.fire(environment=environment, runner=None)
    results.finishers.append(gevent.spawn(drain))
    environment.events.test_stop.fire(environment=environment)
    checking = gevent.spawn(results.finish)
    gevent.sleep(0.05)
    assert not checking.dead and not (folder / "verdicts.json").exists()  # waiting for the drain
    release.set()
    checking.join(timeout=10)
    verdicts = json.loads((folder / "verdicts.json").read_text())["verdicts"]
    assert [(v["status"], v["measured"]) for v in verdicts] == [("passed", 20)]
    assert environment.process_exit_code is None


@pytest.mark.parametrize("options", [SimpleNamespace(), None])
def test_a_run_without_loadkits_options_adds_no_listener(options):
    environment = locust_environment([])
    environment.parsed_options = options
    check.register_checks(environment.events, FakeResults(None))
    environment.events.init.fire(environment=environment, runner=None)
    assert environment.events.test_stop.listeners == []


@pytest.mark.parametrize("asked", [None, []])
def test_no_check_asked_writes_no_verdicts(tmp_path, asked):
    folder = finished_folder(tmp_path)
    environment = locust_environment(asked)
    check.register_checks(environment.events, FakeResults(folder))
    environment.events.init.fire(environment=environment, runner=None)
    environment.events.test_stop.fire(environment=environment)
    assert not (folder / "verdicts.json").exists() and environment.process_exit_code is None


def test_checks_set_after_init_are_the_ones_checked(tmp_path):
    """The web UI's start form sets the test's thresholds after init: the stop reads them then."""
    folder = finished_folder(tmp_path)
    environment = locust_environment(None)
    check.register_checks(environment.events, FakeResults(folder))
    environment.events.init.fire(environment=environment, runner=None)
    environment.parsed_options.check = ["requests>100"]
    environment.events.test_stop.fire(environment=environment)
    assert json.loads((folder / "verdicts.json").read_text())["passed"] is False
    assert environment.process_exit_code == 3


def test_the_help_names_each_argument():
    parser = argparse.ArgumentParser(prog="loadkit check")
    check.add_arguments(parser)
    usage = " ".join(parser.format_help().split())
    assert usage.startswith("usage: loadkit check [-h] --check EXPR [--json FILE] [--junit FILE] RESULTS")
    for line in ("RESULTS a results folder, a Locust --csv PREFIX (e.g. run1/locust) or a Locust --json-file output",
                 "--check EXPR a threshold, repeatable: e.g. p95<250ms, send:fail_ratio<0.01, phase.envelope:p99<20ms, "
                 "no_worker_lost, e2e.p99<500ms, run_complete",
                 "--json FILE also write the verdicts as JSON", "--junit FILE also write the verdicts as JUnit XML"):
        assert line in usage


def test_the_command_says_and_keeps_what_the_readers_skipped(tmp_path, capsys):
    folder = finished_folder(tmp_path)
    with open(folder / "metrics.jsonl", "a") as out:
        out.write("{damaged\n")
    json_path = tmp_path / "v.json"
    assert check.run(arguments(str(folder), "--check", "requests==100", "--json", str(json_path))) == 0
    notes = json.loads(json_path.read_text())["notes"]
    assert len(notes) == 1 and "metrics.jsonl" in notes[0]
    assert f"note: {notes[0]}" in capsys.readouterr().out
