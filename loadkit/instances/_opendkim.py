"""OpenDKIM as a milter of a Postfix instance, and the DKIM key both filters sign with.

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
read from its exit status and its stderr.

The key (`write_dkim_key`) is a new RSA key per start: its private half in
``keys/SELECTOR.private`` (mode 0600, owned by the filter's user), its
public half in ``public/`` as ``SELECTOR._domainkey.DOMAIN.pem`` and as the
TXT record ``SELECTOR._domainkey.DOMAIN.txt`` (what ``loadkit sink
--dkim-verify`` reads, and what a zone would publish).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from loadkit.instances._system import (
    InstanceError,
    choose_port,
    find_program,
    is_alive,
    listens,
    read_pid,
    stop_daemon,
    user_ids,
    wait_until,
)

PACKAGES = ["opendkim"]
MODES = ("sign", "verify")
SOCKETS = ("inet", "unix")
DKIM_FILTERS = ("amavis", "opendkim")
DEFAULT_SELECTOR = "loadkit"
DEFAULT_DOMAIN = "loadkit.test"
KEY_BITS = 2048
START_TIMEOUT = 30.0
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")


def check_dkim_names(domain: str, selector: str) -> None:
    """A signing domain and selector that DNS could hold (one line otherwise)."""
    if not _NAME.match(domain) or "." not in domain:
        raise InstanceError(f"--dkim-domain {domain}: not a domain name")
    if not _NAME.match(selector):
        raise InstanceError(f"--dkim-selector {selector}: not a DNS label")


@dataclass(frozen=True)
class DkimKeyFiles:
    """Where one generated key's halves are."""

    domain: str
    selector: str
    private_key: Path
    public_dir: Path

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def txt_record_path(self) -> Path:
        return self.public_dir / f"{self.dns_name}.txt"

    @property
    def public_key_path(self) -> Path:
        return self.public_dir / f"{self.dns_name}.pem"

    def txt_record(self) -> str:
        return self.txt_record_path.read_text().strip()

    def describe(self) -> dict:
        return {"domain": self.domain, "selector": self.selector, "private_key": str(self.private_key),
                "public_dir": str(self.public_dir), "public_key": str(self.public_key_path),
                "txt_record": str(self.txt_record_path), "dns_name": self.dns_name}

    @classmethod
    def restore(cls, info: dict) -> "DkimKeyFiles":
        return cls(info["domain"], info["selector"], Path(info["private_key"]), Path(info["public_dir"]))


def write_dkim_key(folder: Path, domain: str, selector: str, owner: str | None = None) -> DkimKeyFiles:
    """A new RSA key in `folder`: keys/SELECTOR.private (for `owner` alone) and public/ (for anyone)."""
    from cryptography.hazmat.primitives import serialization

    from loadkit.dkim import DkimSigner

    signer = DkimSigner.generate(selector, domain, bits=KEY_BITS)
    files = DkimKeyFiles(domain, selector, folder / "keys" / f"{selector}.private", folder / "public")
    for sub, mode in (("keys", 0o700), ("public", 0o755)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(folder / sub, mode)
    files.private_key.write_bytes(signer.private_key_pem)
    os.chmod(files.private_key, 0o600)
    if owner is not None:
        uid, gid = user_ids(owner)
        for path in (folder / "keys", files.private_key):
            os.chown(path, uid, gid)
    key = serialization.load_pem_private_key(signer.private_key_pem, password=None)
    files.public_key_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    files.txt_record_path.write_bytes(signer.dns_txt_record() + b"\n")
    return files


class OpenDkimMilter:
    """``opendkim -x FOLDER/opendkim.conf`` on ``inet:PORT@127.0.0.1``, signing or verifying."""

    def __init__(self, folder: Path, mode: str = "sign", domain: str = DEFAULT_DOMAIN,
                 selector: str = DEFAULT_SELECTOR, port: int = 0, socket: str = "inet"):
        if mode not in MODES:
            raise InstanceError(f"--dkim-mode {mode}: expected one of {', '.join(MODES)}")
        if socket not in SOCKETS:
            raise InstanceError(f"--dkim-socket {socket}: expected one of {', '.join(SOCKETS)}")
        self.socket = socket
        check_dkim_names(domain, selector)
        self.folder = Path(folder)
        self.mode = mode
        self.domain = domain
        self.selector = selector
        self.requested_port = port
        self.port: int | None = None
        self.pid: int | None = None
        self.key: DkimKeyFiles | None = None

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

    @staticmethod
    def check_installed() -> None:
        find_program("opendkim", PACKAGES, "OpenDKIM (opendkim)")
        user_ids("opendkim")  # the package creates the account the milter runs as

    def start(self) -> None:
        program = find_program("opendkim", PACKAGES, "OpenDKIM (opendkim)")
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o755)
        self.key = write_dkim_key(self.folder, self.domain, self.selector, owner="opendkim")
        run = self.folder / "run"
        run.mkdir(exist_ok=True)
        uid, gid = user_ids("opendkim")
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
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LOADKIT_MILTER": str(self.folder)}

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
        return {"filter": "opendkim", "mode": self.mode, "socket": self.socket, "folder": str(self.folder),
                "pid": self.pid, "milter": self.milter if self.port or self.socket == "unix" else None,
                "port": self.port, "config": str(self.config_path),
                "key": self.key.describe() if self.key else None}

    @classmethod
    def restore(cls, info: dict) -> "OpenDkimMilter":
        key = info.get("key") or {}
        milter = cls(Path(info["folder"]), info.get("mode", "sign"), key.get("domain", DEFAULT_DOMAIN),
                     key.get("selector", DEFAULT_SELECTOR), socket=info.get("socket", "inet"))
        milter.pid, milter.port = info.get("pid"), info.get("port")
        milter.key = DkimKeyFiles.restore(key) if key else None
        return milter
