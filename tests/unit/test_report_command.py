"""``loadkit report RESULTS [-o FILE]``: the path on success, one line and exit 2 on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loadkit.cli import main
from tests.unit.test_report import write_results


def run_report(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_it_writes_the_report_and_prints_its_path(tmp_path, capsys):
    folder = write_results(tmp_path / "run")
    code, out, err = run_report(capsys, str(folder))
    assert (code, out, err) == (0, f"{folder / 'report.html'}\n", "")
    assert (folder / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_output_and_prefix_options(tmp_path, capsys):
    folder = write_results(tmp_path / "run", prefix="nightly")
    code, out, _ = run_report(capsys, str(folder / "nightly"), "-o", str(tmp_path / "nightly.html"))
    assert (code, out) == (0, f"{tmp_path / 'nightly.html'}\n")
    assert (tmp_path / "nightly.html").is_file() and not (folder / "report.html").exists()


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing folder", "no such results folder or --csv prefix"),
        ("folder without stats", "no *_stats.csv in"),
        ("not a stats file", "has no column 'Type'"),
        ("output folder missing", "cannot write"),
        ("output is a folder", "cannot write"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, expected):
    folder = write_results(tmp_path / "run")
    args = {
        "missing folder": [str(tmp_path / "nope")],
        "folder without stats": [str(tmp_path)],  # holds only the results folder
        "not a stats file": [str(tmp_path / "other" / "bad")],
        "output folder missing": [str(folder), "-o", str(tmp_path / "nope" / "r.html")],
        "output is a folder": [str(folder), "-o", str(tmp_path)],
    }[case]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "bad_stats.csv").write_text("<html>not csv</html>\n")
    code, out, err = run_report(capsys, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("loadkit report: error: ")
    assert expected in err


def test_the_installed_command_fails_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "report", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == f"loadkit report: error: no such results folder or --csv prefix: {tmp_path / 'nope'}\n"
    assert result.stdout == ""
