"""Shared test helpers: real peers and what they can do, root, ports, bounded waits.

A test that cannot run here (a real peer missing or unable to do what the
test asks, no root, a kernel feature absent) skips on a developer's machine
and fails when CI=true: every such check goes through `cannot_run`. Under
CI=true a skip from anywhere else (a bare `pytest.skip`, `skipif`) fails the
session too, and the skips are listed: CI must never go green by not running
a test.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PEER_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")

# The Debian package of each peer program the tests start (scripts/install-peers installs them).
PEER_PACKAGES = {
    "smtp-source": "postfix", "smtp-sink": "postfix", "postfix": "postfix", "postconf": "postfix",
    "swaks": "swaks", "dovecot": "dovecot-core dovecot-lmtpd", "apache2": "apache2", "ab": "apache2-utils",
    "openssl": "openssl", "chromium": "chromium", "docker-compose": "docker-compose", "ip": "iproute2",
    "amavisd": "amavisd-new", "opendkim": "opendkim",
}
# What `swaks --support` calls a feature -> the Debian package that brings the Perl module it needs.
SWAKS_FEATURE_PACKAGES = {
    "TLS": "libnet-ssleay-perl",
    "Basic AUTH": "perl",  # PLAIN and LOGIN need only MIME::Base64
    "AUTH CRAM-MD5": "perl",
    "AUTH DIGEST-MD5": "libauthen-sasl-perl",
    "IPv6": "libio-socket-inet6-perl",
}


def cannot_run(reason: str) -> NoReturn:
    """Skip the test on a developer's machine; fail it when CI=true, where every test must run."""
    if IN_CI:
        pytest.fail(f"{reason}; with CI=true this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


def find_peer(name: str) -> str:
    """The path of a real peer program, or skip (fail under CI) naming its package when it is missing."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(PEER_DIRS))
    if path:
        return path
    package = PEER_PACKAGES.get(name, name)
    cannot_run(f"{name} is not installed (scripts/install-peers, or apt-get install {package})")


@functools.cache
def _swaks_support(path: str) -> dict[str, str | None]:
    """`swaks --support`: feature -> None when supported, else swaks's own reason."""
    done = subprocess.run([path, "--support"], capture_output=True, text=True, timeout=30, check=False)
    features: dict[str, str | None] = {}
    for line in (done.stdout + done.stderr).splitlines():
        if supported := re.match(r"=== (.+) supported$", line):
            features[supported.group(1)] = None
        elif missing := re.match(r"\*\*\* (.+?) not available: (.+)$", line):
            features[missing.group(1)] = missing.group(2)
    return features


def swaks_with(*features: str) -> str:
    """The path of swaks once it says (`swaks --support`) it can do each feature, e.g. "TLS";
    otherwise skip (fail under CI) naming the Debian package that brings it."""
    path = find_peer("swaks")
    support = _swaks_support(path)
    for feature in features:
        if feature not in support or support[feature] is not None:
            package = SWAKS_FEATURE_PACKAGES.get(feature, "?")
            said = support.get(feature) or "not listed by swaks --support"
            cannot_run(f"swaks cannot do {feature} ({said}): apt-get install {package}, or run scripts/install-peers")
    return path


def require_root(why: str) -> None:
    """Skip (fail under CI) unless the tests run as root; `why` says what needs it."""
    if os.geteuid() != 0:
        cannot_run(f"{why} needs root")


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now, released before the caller binds it: another process can take it
    in between. Only for servers that can neither bind port 0 and say which port they got nor be found
    with `listening_port` (loadkit's Postfix, Dovecot and Apache instances choose their ports so)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def refused_port(host: str = "127.0.0.1"):
    """A port where a connection is refused, held (bound, never listening) so no other process takes it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        yield sock.getsockname()[1]


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _listening_ports(pid: int) -> set[int]:
    inodes = socket_inodes(pid)
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN; field 9: the socket's inode
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def listening_port(process: subprocess.Popen, timeout: float = 30.0) -> int:
    """The TCP port that `process` listens on, read from the kernel's tables once it listens.

    For peers that bind port 0 but do not say which port they got (Postfix's
    smtp-sink, a Locust master): no port is picked for them and released for
    another process to take first.
    """
    if not Path(f"/proc/{process.pid}/net").exists():
        cannot_run("no /proc to read a process's listening sockets from")
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited with {process.returncode} before it listened")
        try:
            ports = _listening_ports(process.pid)
        except FileNotFoundError:  # gone between poll() and the read
            ports = set()
        if len(ports) == 1:
            return ports.pop()
        assert len(ports) < 2, f"{process.args[0]} listens on several ports: {sorted(ports)}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.args[0]} did not listen within {timeout}s")
        time.sleep(0.05)


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
            time.sleep(0.05)


@pytest.fixture
def peer():
    """``peer("smtp-source")`` -> path of the real program (skip/fail when missing)."""
    return find_peer


# -- under CI=true, a skip fails the session ------------------------------------------------------

_skipped: list[tuple[str, str]] = []


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)


def pytest_configure(config):
    # A suite started in the background (`nohup`, `&` in a script) ignores SIGINT, and its children
    # would inherit that: the tests that interrupt a command mid-run need them to start with the default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report):
    if report.skipped:
        _skipped.append((report.nodeid, _skip_reason(report)))


def pytest_terminal_summary(terminalreporter):
    if IN_CI and _skipped:
        terminalreporter.section("skipped under CI=true: the session fails", sep="=", red=True, bold=True)
        for nodeid, reason in _skipped:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}")


def pytest_sessionfinish(session):
    if IN_CI and _skipped and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _gevent_clock_is_fresh():
    """A test's first gevent timer counts from when the test starts, not from the last test's last turn
    of the loop (see loadkit.loop_clock)."""
    if "gevent" in sys.modules:
        from loadkit.loop_clock import refresh_loop_clock

        refresh_loop_clock()


_patched_by: list[str] = []  # the test that left this process monkey-patched, said once


@pytest.fixture(autouse=True)
def _the_process_stays_unpatched(request):
    """Importing Locust (or gevent's monkey.patch_all) inside a test patches the pytest process too:
    every later test that uses threads or Popen then fails, far from the cause. Name the test that did it."""
    yield
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and not _patched_by and (monkey.is_module_patched("socket")
                                                    or monkey.is_module_patched("threading")):
        _patched_by.append(request.node.nodeid)
        pytest.fail(f"{request.node.nodeid} monkey-patched the test process (gevent, e.g. by importing Locust): "
                    "run what needs it in a subprocess", pytrace=False)


def pytest_collection_finish(session):
    """No test module may import Locust when it is collected: importing it monkey-patches the
    whole process (gevent), and every later test that starts a real peer through the standard
    library's Popen then fails. Tests reach Locust through subprocesses (`locust -f ...`)."""
    import sys

    if "locust" in sys.modules:
        raise pytest.UsageError(
            "a test module imported Locust at collection; run what needs it in a subprocess"
        )
