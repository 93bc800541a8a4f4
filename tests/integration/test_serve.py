"""`loadkit serve` on a real results folder (made by `loadkit demo`), fetched with urllib.

The command runs in a subprocess as a Kubernetes master would run it after
its Locust run; what comes out over HTTP must be the folder's files, byte for
byte, and the command must stop when told to (--for, SIGTERM).
"""

from __future__ import annotations

import filecmp
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SERVING = re.compile(r"loadkit serve: serving (\S+) on http://([\d.]+):(\d+)/")


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    """A folder of results folders, as a master's --results leaves it: one real run in it."""
    parent = tmp_path_factory.mktemp("reports")
    done = subprocess.run([sys.executable, "-m", "loadkit", "demo", "--duration", "3", "--users", "5",
                           "--out", str(parent)], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = [child for child in parent.iterdir() if (child / "run.json").is_file()]
    assert (run / "report.html").is_file() and (run / "metrics.jsonl").stat().st_size > 0
    return parent


def _start(*args: str) -> tuple[subprocess.Popen, str, Path]:
    process = subprocess.Popen([sys.executable, "-m", "loadkit", "serve", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # the first line says where it serves, once it listens
    match = SERVING.search(line)
    if match is None:
        process.kill()
        raise AssertionError(f"no serving line: {line!r} {process.stderr.read()[-2000:]}")
    return process, f"http://{match[2]}:{match[3]}", Path(match[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        return answer.read()


def test_serves_the_newest_run_its_report_and_an_archive_equal_to_the_folder(reports, tmp_path):
    (run,) = [child for child in reports.iterdir() if child.is_dir()]
    process, url, served = _start(str(reports), "--port", "0", "--for", "60s")
    try:
        assert served == run
        assert url.startswith("http://127.0.0.1:")  # loopback unless --bind says otherwise
        assert _get(f"{url}/report.html") == (run / "report.html").read_bytes()
        assert _get(f"{url}/run.json") == (run / "run.json").read_bytes()
        index = _get(f"{url}/").decode()
        names = sorted(path.name for path in run.iterdir())
        assert all(f'href="/{name}"' in index for name in [*names, "results.tar.gz"])

        archive = tmp_path / "results.tar.gz"
        archive.write_bytes(_get(f"{url}/results.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp_path / "out", filter="data")
        extracted = tmp_path / "out" / run.name
        assert sorted(path.name for path in extracted.iterdir()) == names
        match, mismatch, errors = filecmp.cmpfiles(run, extracted, names, shallow=False)
        assert (sorted(match), mismatch, errors) == (names, [], [])

        for missing in ("nothing.txt", "../run.json", "%2e%2e/%2e%2e/etc/passwd"):
            with pytest.raises(urllib.error.HTTPError) as error:
                _get(f"{url}/{missing}")
            assert error.value.code == 404

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        assert "loadkit serve: stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_stops_by_itself_after_the_stated_time(reports):
    (run,) = [child for child in reports.iterdir() if child.is_dir()]
    started = time.monotonic()
    process, url, served = _start(str(run), "--port", "0", "--for", "2s")
    try:
        assert served == run
        assert process.wait(timeout=15) == 0
        assert 2 <= time.monotonic() - started < 10
        with pytest.raises(urllib.error.URLError):
            _get(f"{url}/")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_report_missing_is_a_404_that_says_what_to_run(reports, tmp_path):
    (run,) = [child for child in reports.iterdir() if child.is_dir()]
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "run.json").write_bytes((run / "run.json").read_bytes())
    process, url, _ = _start(str(bare), "--port", "0", "--for", "30s")
    try:
        with pytest.raises(urllib.error.HTTPError) as error:
            _get(f"{url}/report.html")
        assert error.value.code == 404 and "loadkit report" in error.value.reason
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("args, says", [
    (["{missing}"], "no such folder"),
    (["{empty}"], "not a results folder"),
    (["{reports}", "--for", "soon"], "--for"),
    (["{reports}", "--for", "0s"], "--for"),
    (["{reports}", "--port", "70000"], "--port"),
    (["{reports}", "--port", "{busy}"], "cannot listen"),
    (["{reports}", "--bind", "192.0.2.1"], "cannot listen"),
])
def test_bad_input_is_one_line_and_exit_2(reports, tmp_path, args, says):
    empty = tmp_path / "empty"
    empty.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {"missing": tmp_path / "nope", "empty": empty, "reports": reports, "busy": busy.getsockname()[1]}
        argv = [arg.format(**values) for arg in args]
        done = subprocess.run([sys.executable, "-m", "loadkit", "serve", *argv],
                              check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadkit serve: error:") and says in lines[0], done.stderr
    assert done.stdout == ""


def test_defaults_are_port_8089_on_loopback_until_stopped():
    from loadkit.cli import build_parser

    parser, _ = build_parser(["serve", "reports"])
    options = parser.parse_args(["serve", "reports"])
    assert (options.port, options.bind, options.duration) == (8089, "127.0.0.1", None)


def test_serving_needs_neither_locust_nor_gevent():
    # It runs after Locust has exited, and must not monkey-patch the standard library it serves with.
    code = "import sys, loadkit.serve; print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
