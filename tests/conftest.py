"""Shared test helpers: real peers, free ports, bounded waits.

A real peer (smtp-source, smtp-sink, swaks, ...) that is missing skips its
test on a developer's machine, and fails it when CI=true: CI must never go
green by not running the integration tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PEER_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


def find_peer(name: str) -> str:
    """The path of a real peer program, or skip (fail under CI) when it is missing."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(PEER_DIRS))
    if path:
        return path
    message = f"{name} is not installed (apt-get install postfix swaks provides the mail peers)"
    if IN_CI:
        pytest.fail(message + "; with CI=true a missing peer is a failure", pytrace=False)
    pytest.skip(message)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now, for peers that cannot bind port 0 and report it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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
