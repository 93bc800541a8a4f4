"""DKIM signatures for generated messages (dkimpy), so loads can exercise a verifying mail flow.

A message is signed per pooled message, once, when the pool is built: the
headers stamped on each send (Date, Message-ID, X-Loadkit-Trace) change every
time, so they are left out of the signature. Only the headers that are the
same in every send of a pooled message are signed (From, To, Subject,
MIME-Version, Content-Type) plus the body, and the ``DKIM-Signature`` header
is kept with the pooled message: stamping costs nothing more. A verifier
accepts such a message, since DKIM lets a signer choose the headers it signs.

    signer = DkimSigner.generate("loadkit", "loadkit.test")     # a new 2048-bit RSA key
    signer.dns_txt_record()                                     # v=DKIM1; k=rsa; p=...
    MessageFactory(dkim=signer)
"""

from __future__ import annotations

import base64
from pathlib import Path

from loadkit.errors import LoadkitError

SIGNED_HEADERS = (b"From", b"To", b"Subject", b"MIME-Version", b"Content-Type")
KEY_BITS = 2048


class DkimError(LoadkitError, ValueError):
    """A key or signing setting that cannot be used (one line)."""


class DkimSigner:
    """Signs messages as `domain` with the RSA `private_key_pem` published under `selector`."""

    def __init__(self, selector: str, domain: str, private_key_pem: bytes | str):
        try:
            import dkim  # noqa: F401
        except ImportError:
            raise DkimError("DKIM signing needs dkimpy: pip install 'loadkit[dkim]'") from None
        self.selector = selector.encode("ascii") if isinstance(selector, str) else selector
        self.domain = domain.encode("ascii") if isinstance(domain, str) else domain
        self.private_key_pem = private_key_pem.encode("ascii") if isinstance(private_key_pem, str) else private_key_pem
        if b"PRIVATE KEY" not in self.private_key_pem:
            raise DkimError("DKIM key: expected a PEM private key")

    @classmethod
    def generate(cls, selector: str, domain: str, bits: int = KEY_BITS) -> "DkimSigner":
        """A signer with a new RSA key."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        return cls(selector, domain, pem)

    @classmethod
    def from_file(cls, selector: str, domain: str, path: str | Path) -> "DkimSigner":
        try:
            return cls(selector, domain, Path(path).read_bytes())
        except OSError as error:
            raise DkimError(f"DKIM key {path}: {error.strerror or error}") from None

    def dns_txt_record(self) -> bytes:
        """The TXT record to publish at ``selector._domainkey.domain``."""
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def signature_header(self, message: bytes) -> bytes:
        """The ``DKIM-Signature: ...\\r\\n`` header of `message` (CRLF line ends), to put before it."""
        import dkim

        try:
            header = dkim.sign(message, self.selector, self.domain, self.private_key_pem,
                               include_headers=list(SIGNED_HEADERS), linesep=b"\r\n")
        except dkim.DKIMException as error:
            raise DkimError(f"DKIM signing failed: {error}") from None
        return header
