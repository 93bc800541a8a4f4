"""``loadkit target`` as users run it, and what it says when it cannot start a server.

Also the helpers the other test_instance_* files share: a state root that
the servers' unprivileged users can enter, and the command in a subprocess.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from loadkit import cli
from loadkit.instances import Apache, Dovecot, MissingPackages, Postfix, _system
from loadkit.instances._system import is_alive, listens
from tests.conftest import cannot_run, require_root

COMMAND_TIMEOUT = 60


@pytest.fixture
def instance_root():
    """A folder for state folders that every server user may enter.

    pytest's tmp_path sits below a folder closed to others (0700), where
    Apache's and Dovecot's unprivileged processes could not read or write.
    """
    root = Path(tempfile.mkdtemp(prefix="loadkit-instances-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port`, from /proc/net/tcp{,6}."""
    addresses = set()
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            cannot_run("no /proc/net to read listening sockets from")
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # the kernel prints each 32-bit word in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                addresses.add(str(ipaddress.ip_address(raw)) if width == 8 else str(ipaddress.IPv6Address(raw)))
    return addresses


def target(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadkit", "target", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )


def one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert text in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("server, program", [("apache", "apache2"), ("dovecot", "dovecot"), ("postfix", "postfix")])
def test_up_status_down_from_the_command_line(peer, instance_root, server, program):
    peer(program)
    if server == "postfix":
        require_root("a Postfix instance")
    state = instance_root / server
    up = target(server, "up", "--dir", str(state))
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith(f"{server}: ") and str(state) in up.stdout
    url = re.search(r"(?:smtp|lmtp|http)://127\.0\.0\.1:(\d+)", up.stdout)
    info = json.loads((state / "instance.json").read_text())
    assert info["running"] is True and info["port"] == int(url.group(1))
    assert listens("127.0.0.1", info["port"])

    status = target(server, "status", "--dir", str(state))
    assert status.returncode == 0 and status.stdout.startswith(f"{server}: running"), status.stdout
    as_json = json.loads(target(server, "status", "--dir", str(state), "--json").stdout)
    assert as_json["running"] is True and as_json["master_pid"] == info["master_pid"]

    again = target(server, "up", "--dir", str(state))
    one_line_error(again, "already runs in")

    down = target(server, "down", "--dir", str(state))
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
    assert not is_alive(info["master_pid"]) and not listens("127.0.0.1", info["port"])
    if server == "postfix":
        assert not is_alive(info["sink"]["pid"])
    stopped = target(server, "status", "--dir", str(state))
    assert stopped.returncode == 3 and "not running" in stopped.stdout
    assert json.loads((state / "instance.json").read_text())["running"] is False


def test_status_and_down_of_a_folder_without_an_instance(tmp_path):
    status = target("apache", "status", "--dir", str(tmp_path / "none"))
    assert status.returncode == 3 and "not running" in status.stdout
    down = target("apache", "down", "--dir", str(tmp_path / "none"))
    assert down.returncode == 0 and "no instance" in down.stdout


@pytest.mark.peer("apache2")
def test_port_in_use_is_one_line(peer, instance_root):
    peer("apache2")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = target("apache", "up", "--dir", str(instance_root / "a"), "--port", str(taken.getsockname()[1]))
    one_line_error(result, "Address already in use")


@pytest.mark.parametrize("args, message", [
    (["apache", "up", "--deliver", "lmtp:127.0.0.1:24"], "--deliver, --sasl and --set are for postfix only"),
    (["postfix", "up", "--deliver", "smtp:192.0.2.1:25"], "only delivers to loopback"),
    (["postfix", "up", "--set", "no_equals_sign"], "invalid NAME=VALUE value"),
    (["dovecot", "status", "--port", "2525"], "--port, --deliver, --sasl and --set go with up"),
    (["apache", "up", "--port", "70000"], "out of range"),
    (["nginx", "up"], "invalid choice"),
    (["postfix", "up", "--set", "relayhost=x\ninet_interfaces=all"], "invalid NAME=VALUE value"),
    (["postfix", "up", "--deliver", ""], "--deliver '': give a value"),
    (["postfix", "up", "--sasl", ""], "--sasl '': give a value"),
    (["apache", "up", "--port", "-1"], "out of range"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    one_line_error(target(*args, "--dir", str(tmp_path / "state")), message)


def test_a_folder_with_other_files_is_refused_not_wiped(tmp_path):
    keep = tmp_path / "mine.txt"
    keep.write_text("not yours")
    one_line_error(target("apache", "up", "--dir", str(tmp_path)), "holds no apache instance")
    assert keep.read_text() == "not yours"


def test_a_file_as_state_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    one_line_error(target("apache", "up", "--dir", str(tmp_path / "file")), "is not a folder")


@pytest.mark.peer("apache2")
def test_a_folder_of_another_server_is_refused(peer, instance_root):
    peer("apache2")
    with Apache(instance_root / "web"):
        one_line_error(target("dovecot", "status", "--dir", str(instance_root / "web")), "is the state folder of apache, not dovecot")


@pytest.mark.peer("dovecot")
def test_a_state_folder_the_server_users_cannot_enter_is_refused(peer, tmp_path):
    require_root("dropping to users that the folder's mode shuts out")
    peer("dovecot")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(_system.InstanceError, match=r"nobody cannot reach .*: .* is mode 0700"):
        Dovecot(closed / "dovecot").start()


@pytest.mark.parametrize("server, packages", [
    ("postfix", "apt-get install postfix"),
    ("dovecot", "apt-get install dovecot-core dovecot-lmtpd"),
    ("apache", "apt-get install apache2"),
])
def test_missing_packages_name_what_to_install(monkeypatch, capsys, tmp_path, server, packages):
    monkeypatch.setenv("PATH", str(tmp_path))  # no server programs anywhere
    monkeypatch.setattr(_system, "PROGRAM_DIRS", ())
    code = cli.main(["target", server, "up", "--dir", str(tmp_path / server)])
    err = capsys.readouterr().err
    assert code == 2 and packages in err and err.count("\n") == 1, err
    with pytest.raises(MissingPackages) as raised:
        {"postfix": Postfix, "dovecot": Dovecot, "apache": Apache}[server](tmp_path / "api").start()
    assert raised.value.packages == packages.split()[2:]


@pytest.mark.parametrize("content, damaged", [
    ("[1,2]", "not a JSON object"),
    ('{"server": "postfix", "sink": "garbage"}', "damaged (sink"),
    ('{"server": "postfix", "master_pid": "abc"}', "damaged (master_pid"),
    ('{"server": "postfix", "port": "x", "sink": {"url": 5}}', "damaged (port, sink"),
])
def test_a_damaged_instance_json_is_one_line_for_status_and_down(tmp_path, content, damaged):
    state = tmp_path / "postfix"
    state.mkdir()
    (state / "instance.json").write_text(content)
    one_line_error(target("postfix", "status", "--dir", str(state)), damaged)
    down = target("postfix", "down", "--dir", str(state))
    assert down.returncode == 2 and "Traceback" not in down.stderr, down.stderr
    assert damaged in down.stderr and down.stderr.count("\n") == 1, down.stderr
    assert "was not running" in down.stdout


@pytest.mark.peer("postfix")
def test_down_stops_a_postfix_whose_instance_json_is_damaged(peer, instance_root):
    """A pid that is not a number: down still finds the master by its pid file, and the sink."""
    peer("postfix")
    require_root("a Postfix instance")
    state = instance_root / "postfix"
    up = target("postfix", "up", "--dir", str(state))
    assert up.returncode == 0, up.stderr
    info = json.loads((state / "instance.json").read_text())
    try:
        (state / "instance.json").write_text(json.dumps({**info, "master_pid": "abc"}))
        one_line_error(target("postfix", "status", "--dir", str(state)), "damaged (master_pid")
        down = target("postfix", "down", "--dir", str(state))
        assert down.returncode == 2 and "postfix: stopped" in down.stdout, down.stdout + down.stderr
        assert "damaged (master_pid)" in down.stderr and down.stderr.count("\n") == 1, down.stderr
        assert not is_alive(info["master_pid"]) and not listens("127.0.0.1", info["port"])
        assert not is_alive(info["sink"]["pid"])
    finally:
        Postfix(state).stop()  # the pid files still lead to what is left


@pytest.mark.peer("postfix")
def test_postfix_under_a_folder_the_postfix_user_cannot_enter_is_refused_up_front(peer):
    peer("postfix")
    require_root("a Postfix instance")
    closed = Path(tempfile.mkdtemp(prefix="loadkit-closed-"))  # mode 0700, as mkdtemp makes it
    try:
        result = target("postfix", "up", "--dir", str(closed / "postfix"))
        one_line_error(result, f"postfix cannot reach {closed}/postfix/queue: {closed} is mode 0700")
        assert f"chmod o+x {closed}" in result.stderr
        assert not (closed / "postfix" / "queue").exists()
    finally:
        shutil.rmtree(closed, ignore_errors=True)


@pytest.mark.parametrize("action", ["up", "status", "down"])
def test_an_empty_dir_is_refused_not_taken_for_the_current_folder(tmp_path, action):
    result = subprocess.run([sys.executable, "-m", "loadkit", "target", "apache", action, "--dir", ""],
                            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd=tmp_path)
    one_line_error(result, "--dir '': give a value")
    assert list(tmp_path.iterdir()) == []
