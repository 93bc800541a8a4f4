"""The test helpers themselves fail loudly: a crashed peer, a traceback, a skip under CI=true.

A helper that swallowed these would let a broken run pass as green, so each
is tried here against small Python children and an inner pytest session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import listening_port, refused_port, swaks_with
from tests.integration.peers import WatchedProcess, watching


def child(code: str, **options) -> WatchedProcess:
    return WatchedProcess("child", [sys.executable, "-c", textwrap.dedent(code)], **options)


def test_a_clean_exit_passes_and_the_output_is_kept():
    process = child("import sys; print('out'); print('err', file=sys.stderr)")
    process.finish(30)
    assert (process.stdout_text(), process.stderr_text()) == ("out\n", "err\n")


def test_an_unexpected_exit_status_fails_with_the_output():
    process = child("import sys; print('what went wrong', file=sys.stderr); sys.exit(1)")
    with pytest.raises(AssertionError, match=r"(?s)child exited with 1, expected 0.*what went wrong"):
        process.finish(30)


def test_a_traceback_fails_even_with_exit_0():
    process = child("""
        import traceback
        try:
            1 / 0
        except ZeroDivisionError:
            traceback.print_exc()
    """)
    with pytest.raises(AssertionError, match=r"(?s)child printed a traceback.*ZeroDivisionError"):
        process.finish(30)


def test_a_process_the_test_kills_on_purpose_is_expected_to_die_so():
    process = child("import time; time.sleep(60)")
    process.send_signal(signal.SIGKILL)
    process.finish(30)
    assert process.returncode == -signal.SIGKILL


def test_a_process_still_running_after_the_test_fails_and_is_stopped():
    process = child("import time; print('still here', flush=True); time.sleep(60)")
    with pytest.raises(AssertionError, match=r"(?s)child was still running 1s after the test.*still here"):
        process.finish(1)
    assert process.poll() is not None


def test_a_stop_signal_ends_a_server_and_its_status_is_checked():
    process = child("import time; time.sleep(60)", stop_signal=signal.SIGTERM)
    with pytest.raises(AssertionError, match=f"exited with {-signal.SIGTERM}, expected 0"):
        process.finish(30)


def test_a_chatty_process_never_stalls_on_a_full_pipe():
    process = child("import sys; sys.stderr.write('x' * 1_000_000); sys.stdout.write('y' * 1_000_000)")
    process.finish(30)
    assert len(process.stderr_text()) == len(process.stdout_text()) == 1_000_000


def test_watching_checks_every_process_after_the_block_and_leaves_none_running():
    good = child("pass")
    bad = child("import sys; sys.exit(3)")
    with pytest.raises(AssertionError, match="exited with 3"), watching([good, bad]):
        pass
    sleeper = child("import time; time.sleep(60)")
    with pytest.raises(RuntimeError, match="the test failed"), watching([sleeper]):
        raise RuntimeError("the test failed")
    assert sleeper.poll() is not None  # killed, and the test's own error is the one reported


def test_listening_port_is_the_port_the_process_bound_at_0():
    process = child("""
        import socket, time
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        print(server.getsockname()[1], flush=True)
        time.sleep(60)
    """, first_line=True, stop_signal=signal.SIGKILL, expected_status=-signal.SIGKILL)
    with watching([process]):
        assert listening_port(process, timeout=30) == int(process.first_line)


def test_a_refused_port_refuses_while_it_is_held():
    with refused_port() as port, pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


FAKE_SWAKS = """#!/bin/sh
# what Debian's swaks says with --support when installed without its Recommends
echo '=== Basic AUTH supported'
echo '*** TLS not available: requires Net::SSLeay' >&2
"""


@pytest.mark.peer("swaks")
def test_swaks_with_asks_swaks_and_names_the_package_it_lacks(tmp_path, monkeypatch):
    fake = tmp_path / "swaks"
    fake.write_text(FAKE_SWAKS)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert swaks_with("Basic AUTH") == str(fake)
    with pytest.raises((pytest.skip.Exception, pytest.fail.Exception)) as refused:
        swaks_with("Basic AUTH", "TLS")
    assert "swaks cannot do TLS (requires Net::SSLeay): apt-get install libnet-ssleay-perl" in str(refused.value)

INNER_CONFTEST = "from tests.conftest import pytest_collectreport, pytest_runtest_logreport, " \
                 "pytest_sessionfinish, pytest_terminal_summary  # noqa: F401\n"
SKIPPING_TESTS = """
import pytest

def test_passes():
    assert True

def test_skips():
    pytest.skip("no such thing here")
"""
CANNOT_RUN_TESTS = """
from tests.conftest import cannot_run

def test_cannot_run():
    cannot_run("no frobnicator (apt-get install frobnicator)")
"""


def inner_pytest(tmp_path, tests: str, ci: bool) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(tests)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": root}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False)


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stdout.rstrip().splitlines()[-1]


def test_under_ci_a_skip_fails_the_session_and_is_listed(tmp_path):
    result = inner_pytest(tmp_path, SKIPPING_TESTS, ci=True)
    assert result.returncode == 1, result.stdout
    assert "skipped under CI=true: the session fails" in result.stdout
    assert "test_inner.py::test_skips: Skipped: no such thing here" in result.stdout
    assert last_line(result).startswith("1 passed, 1 skipped")  # pytest's own summary line still ends the run


def test_on_a_developers_machine_a_skip_is_a_skip_with_its_reason(tmp_path):
    result = inner_pytest(tmp_path, SKIPPING_TESTS, ci=False)
    assert result.returncode == 0, result.stdout
    assert "SKIPPED [1] test_inner.py:8: no such thing here" in result.stdout
    assert "skipped under CI=true" not in result.stdout


@pytest.mark.parametrize("ci, outcome", [(True, "1 failed"), (False, "1 skipped")])
def test_cannot_run_fails_under_ci_and_skips_elsewhere_naming_the_package(tmp_path, ci, outcome):
    result = inner_pytest(tmp_path, CANNOT_RUN_TESTS, ci=ci)
    assert result.returncode == (1 if ci else 0), result.stdout
    assert "no frobnicator (apt-get install frobnicator)" in result.stdout
    assert ("with CI=true this is a failure, not a skip" in result.stdout) == ci
    assert last_line(result).startswith(outcome)
