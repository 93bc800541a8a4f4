"""``loadkit report RESULTS [-o FILE] [--baseline OTHER] [--check EXPR]``: the path on success,
a few progress lines on stderr, one line and exit 2 on bad input, exit 3 on a failed threshold."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from loadkit.cli import main
from loadkit.report import Progress, build_report
from tests.unit.test_report import read_tables, write_results
from tests.unit.test_report_metrics import make_results


def run_report(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_it_writes_the_report_and_prints_its_path(tmp_path, capsys):
    folder = write_results(tmp_path / "run")
    code, out, err = run_report(capsys, str(folder))
    assert (code, out) == (0, f"{folder / 'report.html'}\n")
    assert (folder / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    # Not a terminal: a few plain lines, one per step, no bar.
    lines = err.splitlines()
    assert 3 <= len(lines) <= 6 and all(line.startswith("loadkit report: ") for line in lines)
    assert lines[-1].startswith(f"loadkit report: wrote {folder / 'report.html'} (")
    assert "\r" not in err and "\x1b" not in err


def test_output_and_prefix_options(tmp_path, capsys):
    folder = write_results(tmp_path / "run", prefix="nightly")
    code, out, _ = run_report(capsys, str(folder / "nightly"), "-o", str(tmp_path / "nightly.html"))
    assert (code, out) == (0, f"{tmp_path / 'nightly.html'}\n")
    assert (tmp_path / "nightly.html").is_file() and not (folder / "report.html").exists()


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing folder", "no such results folder or --csv prefix"),
        ("folder without results", "no metrics.jsonl, *_stats.csv or Locust JSON stats in"),
        ("not a stats file", "has no column 'Type'"),
        ("output folder missing", "cannot write"),
        ("output is a folder", "cannot write"),
        ("baseline missing", "no such results folder or --csv prefix"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, expected):
    folder = write_results(tmp_path / "run")
    args = {
        "missing folder": [str(tmp_path / "nope")],
        "folder without results": [str(tmp_path)],  # holds only the results folder
        "not a stats file": [str(tmp_path / "other" / "bad")],
        "output folder missing": [str(folder), "-o", str(tmp_path / "nope" / "r.html")],
        "output is a folder": [str(folder), "-o", str(tmp_path)],
        "baseline missing": [str(folder), "--baseline", str(tmp_path / "nope")],
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


def test_baseline_adds_the_comparison(tmp_path, capsys):
    # Enough seconds and requests for a p99 to be compared (see loadkit.report._compare).
    old = make_results(tmp_path / "old", seconds=8, per_second=150, names=(("SMTP", "send"),), events=False, rise=0)
    new = make_results(tmp_path / "new", seconds=8, per_second=150, names=(("SMTP", "send"),), events=False, latency_ms=20, rise=0)
    code, out, _ = run_report(capsys, str(new.folder), "--baseline", str(old.folder))
    assert code == 0
    comparison = read_tables((new.folder / "report.html").read_text(encoding="utf-8"))["comparison"]
    (total,) = comparison  # one request name: its row would repeat the total's
    assert {"p95", "p99"} <= set(total["Worse"].split(", "))


# -- --check: loadkit.thresholds evaluates, the report shows the verdicts --------------------------


@pytest.fixture
def thresholds():
    return pytest.importorskip("loadkit.thresholds")


def test_a_failed_threshold_exits_3_after_writing_the_report(tmp_path, capsys, thresholds):
    synthetic = make_results(tmp_path / "run", seconds=4, per_second=20, names=(("SMTP", "send"),), events=False)
    code, out, err = run_report(capsys, str(synthetic.folder), "--check", "p95<10s", "--check", "fail_ratio<0.1%")
    assert code == thresholds.EXIT_FAILED == 3
    assert out == f"{synthetic.folder / 'report.html'}\n"
    assert "threshold failed: fail_ratio<0.1%" in err and "p95<10s" not in err
    verdicts = read_tables((synthetic.folder / "report.html").read_text(encoding="utf-8"))["verdicts"]
    assert [(row["Threshold"], row["Result"]) for row in verdicts] == [("p95<10s", "pass"), ("fail_ratio<0.1%", "FAIL")]
    send = synthetic.references[("request", "SMTP", "send")]
    assert verdicts[1]["Measured"] == f"{send.failed / (send.ok + send.failed):.6g}"  # every 25th request failed


def test_passed_thresholds_exit_0_and_a_bad_one_is_exit_2(tmp_path, capsys, thresholds):
    synthetic = make_results(tmp_path / "run", seconds=3, per_second=10, names=(("SMTP", "send"),), events=False)
    code, _, _ = run_report(capsys, str(synthetic.folder), "--check", "p99<10s", "--check", "requests>=30")
    assert code == 0
    code, out, err = run_report(capsys, str(synthetic.folder), "--check", "p95 is small")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("loadkit report: error: cannot read threshold")


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_progress_is_a_bar_redrawn_in_place_then_one_line(tmp_path):
    synthetic = make_results(tmp_path / "run", seconds=5, per_second=5, names=(("SMTP", "send"),), events=False)
    terminal = FakeTerminal()
    build_report(synthetic.folder, progress=Progress(terminal))
    text = terminal.getvalue()
    frames = text.split("\r\x1b[2K")
    assert any("reading" in frame and "\u2588" in frame for frame in frames)
    assert any("100% drawing charts" in frame for frame in frames)
    assert frames[-1] == f"loadkit report: wrote {synthetic.folder / 'report.html'} ({frames[-1].split('(')[-1]}"
    assert frames[-1].endswith(" s)\n") and text.count("\n") == 1
