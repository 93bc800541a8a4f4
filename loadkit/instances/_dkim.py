"""What the two DKIM filters of a Postfix instance share: the key they sign with, and their private daemon's set-up.

`AmavisFilter` (`loadkit.instances._amavis`) and `OpenDkimMilter`
(`loadkit.instances._opendkim`) are each a `DkimFilter`: a daemon of a
Debian package, run as the package's own user from a folder of the Postfix
instance's state folder, signing as one domain with one selector, and
described in instance.json so that a later ``down`` or ``status`` finds it.

The key (`write_dkim_key`) is a new RSA key per start: its private half in
``keys/SELECTOR.private`` (mode 0600, owned by the filter's user), its
public half in ``public/`` as ``SELECTOR._domainkey.DOMAIN.pem`` and as the
TXT record ``SELECTOR._domainkey.DOMAIN.txt`` (what ``loadkit sink
--dkim-verify`` reads, and what a zone would publish).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from loadkit.instances._system import InstanceError, find_program, user_ids

DKIM_FILTERS = ("amavis", "opendkim")
DEFAULT_SELECTOR = "loadkit"
DEFAULT_DOMAIN = "loadkit.test"
KEY_BITS = 2048
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


class DkimFilter:
    """A DKIM filter's daemon in `folder`, signing as `domain` with `selector`; subclasses start and stop it."""

    filter_name = ""  # instance.json's "filter": one of DKIM_FILTERS
    program = ""  # the daemon's executable
    packages: list[str] = []  # what installs it
    label = ""  # how a missing program is named
    user = ""  # the package's account the daemon runs as; it alone reads the private key

    def __init__(self, folder: Path, domain: str = DEFAULT_DOMAIN, selector: str = DEFAULT_SELECTOR):
        check_dkim_names(domain, selector)
        self.folder = Path(folder)
        self.domain = domain
        self.selector = selector
        self.pid: int | None = None
        self.key: DkimKeyFiles | None = None

    @classmethod
    def check_installed(cls) -> str:
        """The daemon's program, once its user is known too; InstanceError naming the package otherwise."""
        program = find_program(cls.program, cls.packages, cls.label)
        user_ids(cls.user)
        return program

    def make_folder_and_key(self) -> None:
        """The filter's folder (readable: the daemon and Postfix look inside) with a new key in it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o755)
        self.key = write_dkim_key(self.folder, self.domain, self.selector, owner=self.user)

    def _environment(self) -> dict:
        """The daemon's whole environment: nothing of the caller's but PATH."""
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}

    def describe(self, **own) -> dict:
        """instance.json's record of the filter: what every filter has, with the filter's `own` fields."""
        return {"filter": self.filter_name, "folder": str(self.folder), "pid": self.pid, **own,
                "key": self.key.describe() if self.key else None}

    @staticmethod
    def key_names(info: dict) -> tuple[str, str]:
        """(domain, selector) of a `describe()` record."""
        key = info.get("key") or {}
        return key.get("domain", DEFAULT_DOMAIN), key.get("selector", DEFAULT_SELECTOR)

    def restore_common(self, info: dict):
        """pid and key from a `describe()` record; returns the filter."""
        self.pid = info.get("pid")
        key = info.get("key")
        self.key = DkimKeyFiles.restore(key) if key else None
        return self
