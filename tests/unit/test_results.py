"""loadkit.results: every file name spelled once, one tolerant reader policy, what the reader derives."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import loadkit
from loadkit import results
from loadkit.results import Notes, ResultsError

PACKAGE = Path(loadkit.__file__).resolve().parent
FILE_NAMES = (
    "run.json", "metrics.jsonl", "events.jsonl", "errors.csv", "verdicts.json", "junit.xml", "e2e.json",
    "probes.jsonl", "postfix_log.json", "report.html", "instance.json", "stats.json", "traces.log", "sink.log",
    "_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv",
)  # fmt: skip


def _code_literals(tree: ast.AST):
    """(line, text) of every string literal that is not a docstring (prose may name files)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def _spelled(name: str, text: str) -> bool:
    pattern = re.escape(name) if name.startswith("_") else r"(?<![\w.])" + re.escape(name) + r"\b"
    return re.search(pattern, text) is not None


def test_every_file_name_is_spelled_once_in_the_results_package():
    found = {name: [] for name in FILE_NAMES}
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, text in _code_literals(ast.parse(path.read_text(encoding="utf-8"))):
            for name in FILE_NAMES:
                if _spelled(name, text):
                    found[name].append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    assert {name: len(places) for name, places in found.items()} == dict.fromkeys(FILE_NAMES, 1), found
    assert all(places[0].startswith("loadkit/results/_names.py:") for places in found.values()), found


def test_the_name_test_would_see_a_stray_literal(tmp_path):
    stray = ast.parse('"""Docs may say metrics.jsonl."""\npath = folder / "metrics.jsonl"\nother = f"{x}_stats.csv"\n')
    spelled = [(line, name) for line, text in _code_literals(stray) for name in FILE_NAMES if _spelled(name, text)]
    assert spelled == [(2, "metrics.jsonl"), (3, "_stats.csv")]


def test_notes_name_the_file_count_the_lines_and_number_the_first_few():
    notes = Notes()
    assert not notes and notes.lines() == []
    notes.damaged("metrics.jsonl", 812)
    assert notes.lines() == ["metrics.jsonl: 1 damaged line skipped (line 812)"]
    for line in range(1, 8):
        notes.damaged("events.jsonl", line)
    notes.add("cannot read e2e.json: damaged")
    assert notes.lines()[1:] == ["events.jsonl: 7 damaged lines skipped (lines 1, 2, 3, 4, 5, ...)",
                                 "cannot read e2e.json: damaged"]


INTERVAL = {"start": 100.0, "end": 101.0, "users": 2,
            "series": [{"kind": "request", "type": "SMTP", "name": "send", "ok": 3, "failed": 1, "bytes": 10,
                        "errors": {"550": 1}}]}  # fmt: skip


def _damaged(case: str) -> bytes:
    line = json.loads(json.dumps(INTERVAL))
    if case == "histogram":
        line["series"][0]["histogram"] = "HISTFAAAgarbage"
    elif case == "ok":
        line["series"][0]["ok"] = "many"
    elif case == "series":
        line["series"] = [1, 2]
    elif case == "negative":
        line["series"][0]["failed"] = -1
    else:
        return {"cut": b'{"start": 102.0, "end": 10', "bytes": bytes(range(1, 10)) + b"\x80\xfe\xff",
                "utf8": b'{"start": 102.0, "series": [], "x": "\xff\xfe"}'}[case]
    return json.dumps(line).encode()


@pytest.mark.parametrize("case", ["cut", "bytes", "utf8", "histogram", "ok", "series", "negative"])
def test_a_damaged_metrics_line_is_skipped_counted_and_named(tmp_path, case):
    from loadkit.hdr import decode

    sound = json.dumps(INTERVAL).encode()
    (tmp_path / results.METRICS_FILE).write_bytes(b"\n".join([sound, _damaged(case), sound]) + b"\n")
    notes = Notes()
    read = list(results.read_intervals(tmp_path, notes, decode=decode))
    assert [number for number, _ in read] == [1, 3]
    assert sum(interval["series"][0]["ok"] for _, interval in read) == 6
    assert notes.lines() == ["metrics.jsonl: 1 damaged line skipped (line 2)"]


def test_binary_events_are_damage_and_leave_the_run_incomplete(tmp_path):
    (tmp_path / results.RUN_FILE).write_text("{}")
    (tmp_path / results.EVENTS_FILE).write_bytes(bytes(range(256)) * 4)
    notes = Notes()
    events = results.read_events(tmp_path, notes)
    assert events == [] and notes.damaged_lines(results.EVENTS_FILE) >= 1
    incomplete = results.incomplete_run(tmp_path, events, notes)
    assert incomplete["kind"] == results.RUN_INCOMPLETE and "no run_stopped event" in incomplete["detail"]


def test_a_run_is_incomplete_without_run_json_or_run_stopped(tmp_path):
    started = {"time": 5.0, "kind": "run_started", "worker": None, "detail": ""}
    stopped = {"time": 9.0, "kind": "run_stopped", "worker": None, "detail": ""}
    (tmp_path / results.EVENTS_FILE).write_text(json.dumps(started) + "\n")
    no_run_json = results.incomplete_run(tmp_path, results.read_events(tmp_path, Notes()))
    assert no_run_json["time"] == 5.0
    assert no_run_json["detail"].startswith("no run.json and no run_stopped event in events.jsonl: the run was killed")
    (tmp_path / results.RUN_FILE).write_text("{}")
    assert results.incomplete_run(tmp_path, [started])["detail"].startswith("no run_stopped event")
    assert results.incomplete_run(tmp_path, [started, stopped]) is None


def test_a_plain_locust_folder_is_not_judged(tmp_path):
    (tmp_path / "locust_stats.csv").write_text("Type,Name\n")
    assert results.incomplete_run(tmp_path, results.read_events(tmp_path, Notes())) is None


@pytest.mark.parametrize("text", ["[1, 2]", '{"server": ', "\udcff"])
def test_a_damaged_instance_json_is_one_line(tmp_path, text):
    (tmp_path / results.INSTANCE_FILE).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ResultsError) as raised:
        results.read_instance(tmp_path)
    assert str(raised.value).startswith(str(tmp_path / results.INSTANCE_FILE)) and "\n" not in str(raised.value)
    assert results.instance_sink(tmp_path) == {}
    assert results.read_instance(tmp_path / "none") is None


def test_json_files_are_written_whole_or_not_at_all(tmp_path):
    path = results.write_e2e(tmp_path, {"accepted": 3})
    assert json.loads(path.read_text()) == {"accepted": 3} and sorted(p.name for p in tmp_path.iterdir()) == ["e2e.json"]
    with pytest.raises(ResultsError) as raised:
        results.write_e2e(tmp_path / "missing", {"accepted": 3})
    assert "cannot write" in str(raised.value) and not (tmp_path / "missing").exists()


def test_readers_and_check_import_neither_locust_nor_gevent(tmp_path):
    (tmp_path / results.METRICS_FILE).write_text(json.dumps(INTERVAL) + "\n")
    (tmp_path / results.RUN_FILE).write_text("{}")
    code = (
        "import sys, io, contextlib; from loadkit.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['check', {str(tmp_path)!r}, '--check', 'requests==4'])\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'locust', 'gevent', 'pandas', 'matplotlib'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout == "0 []\n", result.stderr[-2000:]
