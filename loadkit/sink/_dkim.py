"""DKIM verification at the sink (``--dkim-verify``): pass, fail or none, by signing domain.

Each accepted message's first (topmost) ``DKIM-Signature`` is checked with
dkimpy. Public keys come from files, never from DNS: dkimpy is handed a
``dnsfunc`` that answers from them, so a test's made-up domains verify and
a run makes no lookups. A key file is one of

- ``SELECTOR._domainkey.DOMAIN.txt``: the TXT record's text
  (``v=DKIM1; k=rsa; p=...``), bare or as zone-file quoted strings;
- ``SELECTOR._domainkey.DOMAIN.pem``: the public key in PEM;
- a zone-file line as ``opendkim-genkey`` writes it (``SEL._domainkey IN
  TXT ( "v=DKIM1; ..." ) ; ----- DKIM key SEL for DOMAIN``), under any name.

A folder is read for all of them (not recursively). What is counted:

    pass   {signing domain: messages whose signature verified}
    fail   {signing domain: messages whose signature did not verify, its
            key was unknown, or the signature could not be read}
    none   messages without a DKIM-Signature header

Verification costs CPU per message (hashing the body, an RSA check): the
sink only pays it with the option on, in the sessions that keep the whole
message (`loadkit.sink._full`).
"""

from __future__ import annotations

import re
from pathlib import Path

from loadkit.sink._errors import SinkError

_STUFFED_DOT = re.compile(rb"\r\n\.")
_QUOTED = re.compile(rb'"([^"]*)"')
_ZONE_LINE = re.compile(rb"^\s*(\S+)\s+(?:\d+\s+)?IN\s+TXT\b", re.IGNORECASE)
_ZONE_DOMAIN = re.compile(rb";.*\bfor\s+(\S+)")
_PEM_BODY = re.compile(rb"-----BEGIN PUBLIC KEY-----(.+?)-----END PUBLIC KEY-----", re.DOTALL)
_DOMAINKEY = b"._domainkey."


def read_key_records(path: str | Path) -> dict[bytes, bytes]:
    """{b"selector._domainkey.domain": TXT record text} from a key file or a folder of them."""
    path = Path(path)
    try:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        records: dict[bytes, bytes] = {}
        for file in files:
            if file.suffix in (".txt", ".pem", ".public", ".pub", ".key") or not path.is_dir():
                name, record = _parse_key_file(file.name, file.read_bytes())
                if name is not None:
                    records[name] = record
    except OSError as error:
        raise SinkError(f"--dkim-verify {path}: {error.strerror or error}") from None
    if not records:
        raise SinkError(f"--dkim-verify {path}: no DKIM public key found (SELECTOR._domainkey.DOMAIN.txt or .pem)")
    return records


def _parse_key_file(file_name: str, text: bytes) -> tuple[bytes | None, bytes]:
    pem = _PEM_BODY.search(text)
    if pem is not None:
        record = b"v=DKIM1; k=rsa; p=" + b"".join(pem.group(1).split())
        return _name_from_file(file_name), record
    zone = _ZONE_LINE.match(text)
    quoted = _QUOTED.findall(text)
    record = b"".join(quoted) if quoted else text.strip()
    if b"p=" not in record:
        return None, b""
    if zone is not None:
        owner = zone.group(1).rstrip(b".")
        domain = _ZONE_DOMAIN.search(text)
        if not text.split(None, 1)[0].endswith(b".") and domain is not None:
            owner += b"." + domain.group(1).rstrip(b".")
        if _DOMAINKEY in owner.lower():
            return owner.lower(), record
    return _name_from_file(file_name), record


def _name_from_file(file_name: str) -> bytes | None:
    stem = file_name.rsplit(".", 1)[0].encode("ascii", "replace").lower()
    return stem if _DOMAINKEY in stem else None


class DkimVerifier:
    """Verifies messages against the keys of `records` and counts the outcomes."""

    def __init__(self, records: dict[bytes, bytes]):
        try:
            import dkim
        except ImportError:
            raise SinkError("--dkim-verify needs dkimpy: pip install 'loadkit[dkim]'") from None
        self._dkim = dkim
        self.records = {name.lower().rstrip(b"."): record for name, record in records.items()}
        self.passed: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.unsigned = 0

    @classmethod
    def from_path(cls, path: str | Path) -> "DkimVerifier":
        return cls(read_key_records(path))

    def _answer(self, name, timeout=5):
        if isinstance(name, str):
            name = name.encode("ascii", "replace")
        return self.records.get(name.lower().rstrip(b"."))

    def verify(self, message: bytes) -> str:
        """Check `message` (CRLF line ends, not dot-stuffed) and count it.

        The outcome as the trace log writes it: ``pass:DOMAIN``, ``fail:DOMAIN`` or ``none``."""
        dkim = self._dkim
        checker = None
        try:
            checker = dkim.DKIM(message, minkey=1024)
            if not checker.present():
                self.unsigned += 1
                return "none"
            ok = checker.verify(dnsfunc=self._answer)
        except (dkim.DKIMException, ValueError, LookupError, TypeError):
            # whatever a client sent, the session goes on: a signature that cannot be checked fails
            ok = False
        signer = getattr(checker, "domain", None) or (getattr(checker, "signature_fields", None) or {}).get(b"d")
        domain = signer.decode("ascii", "replace").lower() if signer else "?"
        counts = self.passed if ok else self.failed
        counts[domain] = counts.get(domain, 0) + 1
        return ("pass:" if ok else "fail:") + domain

    def verify_captured(self, captured: bytes, stuffed: bool, size: int) -> str:
        """`verify` a message as the session kept it: after DATA a CRLF, then the dot-stuffed text."""
        if stuffed:
            if len(captured) - 2 != size:  # some dots were stuffed
                captured = _STUFFED_DOT.sub(b"\r\n", captured)
            captured = captured[2:]
        return self.verify(captured)

    def as_dict(self) -> dict:
        """What ``--stats-json`` shows under ``dkim``."""
        return {"pass": dict(sorted(self.passed.items())), "fail": dict(sorted(self.failed.items())),
                "none": self.unsigned}
