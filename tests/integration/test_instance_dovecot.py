"""A real Dovecot LMTP instance (``loadkit.instances.Dovecot``) fed by ``loadkit source -L``.

Dovecot is the peer: each accepted recipient becomes one maildir file that
Dovecot itself wrote, and one "saved mail to INBOX" line in its log.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from loadkit.instances import Dovecot
from loadkit.instances._system import is_alive, listens
from tests.integration.test_instance_cli import instance_root, listening_addresses  # noqa: F401  (fixture)

pytestmark = pytest.mark.peer("dovecot")

MESSAGES, RECIPIENTS = 30, 3


@pytest.fixture
def dovecot(peer, instance_root):
    peer("dovecot")
    with Dovecot(instance_root / "dovecot") as instance:
        yield instance


def lmtp_source(endpoint: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "source", "-L", "-s", "3", "-r", str(RECIPIENTS), "-m", str(MESSAGES),
         "-t", "user@loadkit.test", endpoint],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_every_recipient_of_every_message_lands_in_a_maildir(dovecot):
    assert dovecot.lmtp_url.startswith("lmtp://127.0.0.1:") and dovecot.lmtp_socket.is_socket()
    out = lmtp_source(f"127.0.0.1:{dovecot.port}")
    assert f"{MESSAGES} messages ({MESSAGES} delivered, 0 failed), {MESSAGES * RECIPIENTS} recipients" in out
    assert dovecot.delivered_count() == MESSAGES * RECIPIENTS

    lmtp_source(f"unix:{dovecot.lmtp_socket}")
    assert dovecot.delivered_count() == 2 * MESSAGES * RECIPIENTS
    # loadkit source numbers the recipients 1user@..., 2user@..., 3user@...
    users = sorted(path.name for path in dovecot.mail_dir.iterdir())
    assert users == [f"{n}user@loadkit.test" for n in range(1, RECIPIENTS + 1)]
    for user in users:
        assert dovecot.delivered_count(user) == 2 * MESSAGES
    saved = dovecot.log_path.read_text().count("saved mail to INBOX")
    assert saved == 2 * MESSAGES * RECIPIENTS


def test_greets_with_its_own_name_and_listens_on_loopback_only(dovecot):
    with socket.create_connection(("127.0.0.1", dovecot.port), timeout=5) as sock:
        assert sock.recv(200).startswith(b"220 loadkit-dovecot.localdomain ")
    assert listening_addresses(dovecot.port) == {"127.0.0.1"}


def test_stop_leaves_no_process_and_no_listener(peer, instance_root):
    peer("dovecot")
    dovecot = Dovecot(instance_root / "dovecot").start()
    pid, port = dovecot.master_pid, dovecot.port
    assert is_alive(pid) and listens("127.0.0.1", port)
    again = Dovecot.from_state(instance_root / "dovecot")  # as `down` does, from instance.json
    assert again.is_running() and again.lmtp_url == dovecot.lmtp_url
    again.stop()
    assert not is_alive(pid) and not listens("127.0.0.1", port) and not dovecot.is_running()
