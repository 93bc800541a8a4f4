"""A self-signed certificate for an instance's STARTTLS, made with openssl.

Load tests of TLS need a server certificate, not a trusted one: clients
connect to 127.0.0.1 and are told not to verify (or to trust this file).
"""

from __future__ import annotations

import os
from pathlib import Path

from loadkit.instances._system import find_program, run_command

CERTIFICATE_DAYS = 3650


def self_signed_certificate(folder: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    """(certificate, key) PEM files in `folder`, made once and reused."""
    certificate, key = folder / "cert.pem", folder / "key.pem"
    if certificate.exists() and key.exists():
        return certificate, key
    openssl = find_program("openssl", ["openssl"])
    folder.mkdir(parents=True, exist_ok=True)
    run_command(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-days", str(CERTIFICATE_DAYS), "-subj", f"/CN={common_name}",
            "-addext", f"subjectAltName=DNS:{common_name},DNS:localhost,IP:127.0.0.1,IP:::1",
            "-keyout", str(key), "-out", str(certificate),
        ],
        "cannot make a TLS certificate",
    )
    os.chmod(key, 0o600)  # servers read it as root before they drop privileges
    return certificate, key
