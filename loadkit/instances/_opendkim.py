"""OpenDKIM as a milter of a Postfix instance.

The milter runs as a private daemon in a folder of the Postfix instance's
state folder: its own opendkim.conf, key, pid file, and an inet socket on a
free loopback port (``smtpd_milters = inet:127.0.0.1:PORT``), or a unix
socket (``run/milter.sock``). The system's /etc/opendkim.conf and its
service are never touched.

The socket matters to a load test: over loopback TCP each milter exchange
of a small message waits on delayed ACKs (libmilter leaves Nagle on), so
Postfix with the inet socket signed 27 msgs/s where the unix socket
signed 187 (4 sessions, 5 KiB messages, a busy 2-core machine).

- mode "sign": every message is signed as `domain` with `selector`,
  whatever its From (a ``SigningTable`` of ``*``), so a load of generated
  mail is all signed;
- mode "verify": every message's signature is checked and an
  Authentication-Results header added. Keys are read from the instance's
  own public key file (``TestPublicKeys``), never from DNS.

OpenDKIM logs to syslog only, which is turned off here: a failed start is
read from its exit status and its stderr. Its key is a new one per start
(`loadkit.instances._dkim`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from loadkit.instances._dkim import DEFAULT_DOMAIN, DEFAULT_SELECTOR, DkimFilter
from loadkit.instances._system import (
    InstanceError,
    choose_port,
    is_alive,
    listens,
    read_pid,
    stop_daemon,
    user_ids,
    wait_until,
)

MODES = ("sign", "verify")
SOCKETS = ("inet", "unix")
START_TIMEOUT = 30.0


class OpenDkimMilter(DkimFilter):
    """``opendkim -x FOLDER/opendkim.conf`` on ``inet:PORT@127.0.0.1``, signing or verifying."""

    filter_name = "opendkim"
    program = "opendkim"
    packages = ["opendkim"]
    label = "OpenDKIM (opendkim)"
    user = "opendkim"  # the package creates the account the milter runs as

    def __init__(self, folder: Path, mode: str = "sign", domain: str = DEFAULT_DOMAIN,
                 selector: str = DEFAULT_SELECTOR, port: int = 0, socket: str = "inet"):
        if mode not in MODES:
            raise InstanceError(f"--dkim-mode {mode}: expected one of {', '.join(MODES)}")
        if socket not in SOCKETS:
            raise InstanceError(f"--dkim-socket {socket}: expected one of {', '.join(SOCKETS)}")
        super().__init__(folder, domain, selector)
        self.socket = socket
        self.mode = mode
        self.requested_port = port
        self.port: int | None = None

    @property
    def config_path(self) -> Path:
        return self.folder / "opendkim.conf"

    @property
    def pid_path(self) -> Path:
        return self.folder / "run" / "opendkim.pid"

    @property
    def socket_path(self) -> Path:
        return self.folder / "run" / "milter.sock"

    @property
    def milter(self) -> str:
        """What Postfix's smtpd_milters takes."""
        return f"unix:{self.socket_path}" if self.socket == "unix" else f"inet:127.0.0.1:{self.port}"

    def start(self) -> None:
        program = self.check_installed()
        self.make_folder_and_key()
        run = self.folder / "run"
        run.mkdir(exist_ok=True)
        uid, gid = user_ids(self.user)
        os.chown(run, uid, gid)
        self.port = choose_port(self.requested_port) if self.socket == "inet" else None
        self.config_path.write_text(self._config())
        (self.folder / "signing.table").write_text(f"* {self.key.dns_name}\n")
        key_entry = f"{self.domain}:{self.selector}:{self.key.private_key}"
        (self.folder / "key.table").write_text(f"{self.key.dns_name} {key_entry}\n")
        (self.folder / "test-keys").write_text(f"{self.key.dns_name} {self.key.txt_record()}\n")
        done = subprocess.run([program, "-x", str(self.config_path)], capture_output=True, text=True, check=False,
                              timeout=START_TIMEOUT, stdin=subprocess.DEVNULL, env=self._environment())
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise InstanceError(f"opendkim did not start: {said[-1] if said else f'exit {done.returncode}'}")
        if not wait_until(lambda: read_pid(self.pid_path) is not None and self._listens(), START_TIMEOUT):
            raise InstanceError(f"opendkim does not listen on {self.milter} after {START_TIMEOUT:.0f}s")
        self.pid = read_pid(self.pid_path)

    def _listens(self) -> bool:
        return self.socket_path.is_socket() if self.socket == "unix" else listens("127.0.0.1", self.port)

    def _environment(self) -> dict:
        # Its processes carry this entry, so a pid read back later is known to be this milter's.
        return {**super()._environment(), "LOADKIT_MILTER": str(self.folder)}

    def _config(self) -> str:
        settings = {
            "Syslog": "no",
            "Background": "yes",
            "UserID": "opendkim:opendkim",
            "UMask": "000" if self.socket == "unix" else "007",  # Postfix's smtpd (user postfix) connects
            "PidFile": str(self.pid_path),
            "Socket": f"local:{self.socket_path}" if self.socket == "unix" else f"inet:{self.port}@127.0.0.1",
            "Mode": "s" if self.mode == "sign" else "v",
            "Canonicalization": "relaxed/simple",
            "SignatureAlgorithm": "rsa-sha256",
            "KeyTable": f"refile:{self.folder / 'key.table'}",
            "SigningTable": f"refile:{self.folder / 'signing.table'}",
            "TestPublicKeys": str(self.folder / "test-keys"),  # verify: keys from here, no DNS
            # The key is 0600 and its own user's, but a state folder may well sit below /tmp,
            # whose world-writable bit makes OpenDKIM call every key there unsafe.
            "RequireSafeKeys": "no",
            # Mail from an internal host is outbound, never verified: in verify mode no client is internal
            # (the one entry is TEST-NET-1's, RFC 5737, which no client here has).
            "InternalHosts": "127.0.0.1, ::1" if self.mode == "sign" else "192.0.2.1",
            "OversignHeaders": "From",
            "AlwaysAddARHeader": "yes" if self.mode == "verify" else "no",
            "RemoveOldSignatures": "no",
        }
        lines = ["# A loadkit test instance's milter: loopback only, its own key."]
        lines += [f"{name} {value}" for name, value in settings.items()]
        return "\n".join(lines) + "\n"

    def is_running(self) -> bool:
        return is_alive(self.pid, expect=f"LOADKIT_MILTER={self.folder}")

    def stop(self, timeout: float) -> None:
        stop_daemon(self.pid, timeout, expect=f"LOADKIT_MILTER={self.folder}")

    def describe(self) -> dict:
        return super().describe(mode=self.mode, socket=self.socket,
                                milter=self.milter if self.port or self.socket == "unix" else None,
                                port=self.port, config=str(self.config_path))

    @classmethod
    def restore(cls, info: dict) -> "OpenDkimMilter":
        milter = cls(Path(info["folder"]), info.get("mode", "sign"), *cls.key_names(info),
                     socket=info.get("socket", "inet")).restore_common(info)
        milter.port = info.get("port")
        return milter
