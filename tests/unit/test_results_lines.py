"""The one reader policy (`loadkit.results._lines`), each rule with the exact words and counts it gives."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from loadkit.results._lines import (
    Notes,
    ResultsError,
    close_quietly,
    flush_lines,
    is_count,
    is_number,
    json_lines,
    read_json_object,
    write_json_atomically,
)


def keep_dicts(record):
    return record if isinstance(record, dict) else None


def test_damaged_and_rejected_lines_are_named_by_number_and_blank_lines_are_not_damage(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"a": 1}\n\n[1]\n{cut\n   \n{"b": 2}\n\xff\xfe\n{"c": 3}')
    notes = Notes()
    assert list(json_lines(path, notes, keep_dicts)) == [(1, {"a": 1}), (6, {"b": 2}), (8, {"c": 3})]
    assert notes.damaged_lines("metrics.jsonl") == 3
    assert notes.lines() == ["metrics.jsonl: 3 damaged lines skipped (lines 3, 4, 7)"]
    assert notes


def test_a_validator_that_raises_marks_one_damaged_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"n": 1}\n{"n": 0}\n')
    notes = Notes()
    assert list(json_lines(path, notes, lambda record: {"inverse": 1 / record["n"]})) == [(1, {"inverse": 1.0})]
    assert notes.lines() == ["events.jsonl: 1 damaged line skipped (line 2)"]


def test_progress_is_reported_by_share_of_the_file_and_ends_at_one(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(1000)))
    shares = []
    assert sum(1 for _ in json_lines(path, Notes(), keep_dicts, progress=shares.append)) == 1000
    assert shares[-1] == 1.0 and shares == sorted(shares)
    assert 50 <= len(shares) <= 52  # one report per 2% of the file, then the end
    line_share = 1 / 1000 * 1.2  # a line is about a thousandth of the file
    for index, share in enumerate(shares[:-1]):  # the first read past each 2% step
        assert 0.02 * index - 1e-9 <= share < 0.02 * index + line_share, (index, share)


def test_an_empty_file_reports_its_end_and_a_missing_one_a_note(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    shares = []
    assert list(json_lines(empty, Notes(), keep_dicts, progress=shares.append)) == [] and shares == [1.0]
    notes = Notes()
    assert list(json_lines(tmp_path / "gone.jsonl", notes, keep_dicts)) == []
    assert notes.lines() == ["cannot read gone.jsonl: No such file or directory"]


def test_notes_show_five_line_numbers_then_an_ellipsis_and_say_each_other_note_once():
    notes = Notes()
    assert not notes and notes.lines() == []
    for line in range(1, 8):
        notes.damaged("a.jsonl", line)
    notes.add("cannot read run.json: damaged")
    notes.add("cannot read run.json: damaged")
    assert notes.lines() == [
        "a.jsonl: 7 damaged lines skipped (lines 1, 2, 3, 4, 5, ...)", "cannot read run.json: damaged",
    ]
    only_other = Notes()
    only_other.add("x")
    assert only_other


@pytest.mark.parametrize("value, number, count", [
    (0, True, True), (5, True, True), (-1, True, False), (2.5, True, False), (True, False, False),
    (math.nan, False, False), (math.inf, False, False), ("3", False, False), (None, False, False),
])
def test_numbers_and_counts(value, number, count):
    assert (is_number(value), is_count(value)) == (number, count)


def test_one_json_object_or_a_note_saying_why_not(tmp_path):
    notes = Notes()
    assert read_json_object(tmp_path / "missing.json", notes) is None and not notes
    good = tmp_path / "run.json"
    good.write_text('{"a": [1]}')
    assert read_json_object(good, notes) == {"a": [1]} and not notes
    (tmp_path / "list.json").write_text("[1]")
    assert read_json_object(tmp_path / "list.json", notes) is None
    (tmp_path / "cut.json").write_text('{"a": ')
    assert read_json_object(tmp_path / "cut.json", notes) is None
    lines = notes.lines()
    assert lines[0] == "cannot read list.json: not a JSON object"
    assert lines[1].startswith("cannot read cut.json: damaged (") and len(lines) == 2


def test_a_file_that_cannot_be_read_is_a_note(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    path.write_text("{}")

    def refused(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refused)  # root reads anything: refused here instead
    notes = Notes()
    assert read_json_object(path, notes) is None
    assert notes.lines() == ["cannot read run.json: Permission denied"]


class FailingFile(io.StringIO):
    name = "/results/metrics.jsonl"

    def flush(self):
        raise OSError(28, "No space left on device")


def test_a_flush_that_fails_is_one_line_naming_the_file():
    with pytest.raises(ResultsError) as caught:
        flush_lines(FailingFile())
    assert str(caught.value) == "cannot write /results/metrics.jsonl: No space left on device"
    flush_lines(io.StringIO())  # a flush that works raises nothing


def test_close_quietly_swallows_what_a_failed_close_raises():
    class FailingClose:
        closed_fd = None

        def close(self):
            raise OSError(28, "No space left on device")

        def fileno(self):
            raise ValueError("no descriptor")

    close_quietly(FailingClose())


def test_json_written_whole_with_the_asked_layout_and_no_temporary_left(tmp_path):
    path = tmp_path / "run.json"
    assert write_json_atomically(path, {"b": 1, "a": [2]}) == path
    assert path.read_text() == '{\n  "b": 1,\n  "a": [\n    2\n  ]\n}\n'
    write_json_atomically(str(path), {"b": 1, "a": 2}, indent=None, sort_keys=True)
    assert path.read_text() == '{"a": 2, "b": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_json_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path):
    path = tmp_path / "gone" / "run.json"
    with pytest.raises(ResultsError) as caught:
        write_json_atomically(path, {"a": 1})
    assert str(caught.value) == f"cannot write {path}: No such file or directory"
    blocked = tmp_path / "run.json"
    blocked.mkdir()  # os.replace onto a folder fails after the temporary was written
    with pytest.raises(ResultsError):
        write_json_atomically(blocked, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_exactly_five_damaged_lines_are_all_named_without_an_ellipsis():
    notes = Notes()
    for line in range(1, 6):
        notes.damaged("a.jsonl", line)
    assert notes.lines() == ["a.jsonl: 5 damaged lines skipped (lines 1, 2, 3, 4, 5)"]


def test_a_one_byte_file_is_read_whole_at_its_first_line(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(b"\n")
    shares = []
    assert list(json_lines(path, Notes(), keep_dicts, progress=shares.append)) == [] and shares == [1.0, 1.0]


def test_a_flush_that_fails_on_a_nameless_file_still_says_what_it_was():
    class Nameless:
        def flush(self):
            raise OSError(28, "No space left on device")

    with pytest.raises(ResultsError) as caught:
        flush_lines(Nameless())
    assert str(caught.value) == "cannot write a results file: No space left on device"
