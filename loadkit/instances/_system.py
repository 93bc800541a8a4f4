"""What the instances need from the machine: programs, ports, pids, users.

Servers started here daemonize: their parent is gone by the time ``up``
returns, so they are tracked by pid files and probed with signal 0. A
server that exited may linger as a zombie until init reaps it (in a
container init can be slow to do so), and a zombie is not running.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from loadkit.errors import LoadkitError

COMMAND_TIMEOUT = 30.0  # seconds any server's control command (start, stop, check) may take
PROGRAM_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin", "/bin")


class InstanceError(LoadkitError):
    """An instance cannot start, stop or be read; the message is one line for people."""


class MissingPackages(InstanceError):
    """Programs an instance needs are not installed; ``packages`` names the apt packages."""

    def __init__(self, what: str, packages: list[str]):
        self.packages = packages
        names = " ".join(packages)
        super().__init__(f"{what} is not installed: apt-get install {names} (as root), or scripts/install-peers")


def find_program(name: str, packages: list[str], what: str | None = None) -> str:
    """The path of a server's program, or MissingPackages naming what provides it."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(PROGRAM_DIRS))
    if path is None:
        raise MissingPackages(what or name, packages)
    return path


def require_file(path: str, packages: list[str], what: str) -> str:
    if not os.path.exists(path):
        raise MissingPackages(what, packages)
    return path


def run_command(command: list[str], what: str, timeout: float = COMMAND_TIMEOUT, env=None) -> str:
    """Run a control command; its output, or InstanceError with its last line.

    The output goes through a file, not a pipe: a server that daemonizes
    keeps the descriptors it inherited, and a pipe would then never close.
    """
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise InstanceError(f"{what}: {command[0]} did not finish within {timeout:.0f}s") from None
        except OSError as error:
            raise InstanceError(f"{what}: cannot run {command[0]}: {error.strerror}") from None
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    if process.returncode != 0:
        raise InstanceError(f"{what}: {last_line(text) or f'exit {process.returncode}'}")
    return text


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def tail(path: Path, lines: int = 200) -> list[str]:
    """The last lines of a log file (an empty list when it does not exist)."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(0, stream.tell() - 64 * 1024))
            return stream.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return []


# -- ports -------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (servers that cannot bind port 0 and tell)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def choose_port(port: int, host: str = "127.0.0.1") -> int:
    """`port` checked to be free on `host`, or a free one for 0."""
    if not 0 <= port <= 65535:
        raise InstanceError(f"port {port} is out of range (0-65535)")
    if port == 0:
        return free_port(host)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as error:
            raise InstanceError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return port


def listens(host: str, port: int) -> bool:
    """Whether something listens on host:port.

    Read from the kernel's socket table where there is one: a probe
    connection would make the server start a worker for nothing, and one
    that is still starting when the server is stopped can hold it up.
    """
    table = listening_sockets()
    if table is not None:
        wanted = ipaddress.ip_address(host)
        # a wildcard listener takes it too (0.0.0.0, or :: which by default takes IPv4 as well)
        return any(port == listen_port and (address == wanted or address.is_unspecified)
                   for address, listen_port in table)
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def listening_sockets() -> set | None:
    """{(address, port)} of listening TCP sockets from /proc/net/tcp{,6}; None without /proc."""
    sockets = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/net/{name}") as stream:
                lines = stream.read().splitlines()[1:]
        except OSError:
            if name == "tcp":
                return None
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # 32-bit words in host order
            sockets.add((ipaddress.ip_address(raw), int(port, 16)))
    return sockets


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# -- processes -----------------------------------------------------------------

def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_alive(pid: int | None, expect: str | None = None) -> bool:
    """True when `pid` runs (a zombie waiting to be reaped does not).

    With `expect`, one of its arguments or environment entries must also be
    exactly that text: a pid read from an old file may belong to another
    program by now.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user
    try:
        with open(f"/proc/{pid}/stat") as stream:
            # "pid (comm) S ...": the state follows the last ')'
            if stream.read().rpartition(")")[2].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        return True  # no /proc: signal 0 is all we know
    return expect is None or _mentions(pid, expect)


def _mentions(pid: int, text: str) -> bool:
    """Whether one argument or environment entry of a process is exactly `text`."""
    needle = text.encode()
    for name in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as stream:
                if needle in stream.read().split(b"\0"):
                    return True
        except OSError:
            pass
    return False


def stop_pid(pid: int | None, timeout: float, signum: int = signal.SIGTERM, expect: str | None = None) -> bool:
    """Signal `pid` and wait for it to go; SIGKILL after `timeout`. False if it had to be killed."""
    if not is_alive(pid, expect):
        return True
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return True
    if wait_until(lambda: not is_alive(pid), timeout):
        return True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    wait_until(lambda: not is_alive(pid), 5)
    return False


def session_members(session: int) -> list[int]:
    """Live processes of a session (a daemon's master calls setsid: its pid is the session id)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stream:
                fields = stream.read().rpartition(")")[2].split()
        except OSError:
            continue
        # after "(comm)": state ppid pgrp session ...
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == session:
            members.append(int(entry.name))
    return members


def stop_daemon(pid: int | None, timeout: float, expect: str) -> bool:
    """Stop a daemon's master and wait until every process of its session is gone.

    A master exits before all of its children have: a worker may still hold
    the listening socket for a moment. SIGKILL whatever is left after `timeout`.
    False when there was no such daemon running.
    """
    if not is_alive(pid, expect):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if not os.path.isdir("/proc"):
        stop_pid(pid, timeout)
        return True
    if not wait_until(lambda: not session_members(pid), timeout):
        for member in session_members(pid):
            try:
                os.kill(member, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not session_members(pid), 5)
    return True


# -- users -----------------------------------------------------------------------

def is_root() -> bool:
    return os.geteuid() == 0


def user_ids(name: str) -> tuple[int, int]:
    """(uid, gid) of a system user, or InstanceError."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InstanceError(f"there is no user {name!r} on this machine") from None
    return entry.pw_uid, entry.pw_gid


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_reachable(path: Path, user: str) -> None:
    """Fail when a server process running as `user` could not reach `path`.

    Servers started as root drop to an unprivileged user before they read
    their documents or write mail; every folder above the state folder must
    let others through (mode o+x). pytest's and mkdtemp's folders do not.
    """
    if not is_root():
        return
    for folder in [path, *path.parents]:
        try:
            mode = folder.stat().st_mode
        except OSError:
            continue
        if not mode & stat.S_IXOTH:
            raise InstanceError(
                f"{user} cannot reach {path}: {folder} is mode {stat.S_IMODE(mode):04o}; "
                f"choose a state folder under one others may enter (chmod o+x {folder})"
            )
