"""The sink's TLS: a server context from given files, or from a certificate it makes itself.

Clients of a test sink connect to 127.0.0.1 and are told not to verify, so
any certificate will do; when none is given the sink makes a self-signed
one (EC P-256, ten years, the host name, ``localhost``, 127.0.0.1 and ::1
as subject alternative names): with the ``cryptography`` package when it is
installed, else with ``openssl req -x509`` into a temporary directory. It is
made once per process and host name, when first needed, and kept in memory
only.

The context is gevent's (`gevent.ssl.SSLContext`): the sockets it wraps
wait on the hub, so a handshake never blocks other sessions.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import tempfile

from loadkit.errors import LoadkitError

CERTIFICATE_DAYS = 3650
_HOSTNAME = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z")
_self_signed: dict[str, tuple[bytes, bytes]] = {}  # host name -> (certificate PEM, key PEM)


class TlsSetupError(LoadkitError):
    """No usable certificate; the message is one line for people."""


def server_context(certificate: str | None = None, key: str | None = None, hostname: str = "loadkit-sink"):
    """A server-side gevent SSL context with the given PEM files, or a self-signed certificate."""
    import ssl

    import gevent.ssl

    context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if certificate:
        try:
            context.load_cert_chain(certificate, key or None)
        except ssl.SSLError:
            raise TlsSetupError(
                f"cannot use --tls-cert {certificate}: not a PEM certificate with its private key "
                "(give the key with --tls-key when it is in a file of its own)"
            ) from None
        except OSError as error:
            raise TlsSetupError(f"cannot use --tls-cert {certificate}: {error.strerror or error}") from None
        return context
    certificate_pem, key_pem = self_signed(hostname)
    with tempfile.TemporaryDirectory(prefix="loadkit-sink-tls-") as folder:
        certificate_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        with open(certificate_path, "wb") as stream:
            stream.write(certificate_pem)
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as stream:
            stream.write(key_pem)
        context.load_cert_chain(certificate_path, key_path)
    return context


def self_signing_problem() -> str | None:
    """Why no self-signed certificate could be made here, or None (checked without making one)."""
    import importlib.util

    if importlib.util.find_spec("cryptography") is not None or shutil.which("openssl"):
        return None
    return "cannot make a TLS certificate: neither the cryptography package nor openssl is installed"


def self_signed(hostname: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `hostname`, made once per process."""
    name = hostname if _HOSTNAME.match(hostname) and len(hostname) <= 253 else "loadkit-sink"
    made = _self_signed.get(name)
    if made is None:
        try:
            import cryptography  # noqa: F401 - only to choose the way
        except ImportError:
            made = _with_openssl(name)
        else:
            made = _with_cryptography(name)
        _self_signed[name] = made
    return made


def _alternative_names(name: str) -> tuple[list[str], list[str]]:
    return sorted({name, "localhost"}), ["127.0.0.1", "::1"]


def _with_cryptography(name: str) -> tuple[bytes, bytes]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    hosts, addresses = _alternative_names(name)
    alternatives = [x509.DNSName(host) for host in hosts] + [
        x509.IPAddress(ipaddress.ip_address(address)) for address in addresses
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _with_openssl(name: str) -> tuple[bytes, bytes]:
    openssl = shutil.which("openssl")
    if not openssl:
        raise TlsSetupError("cannot make a TLS certificate: neither the cryptography package nor openssl is installed")
    hosts, addresses = _alternative_names(name)
    alternatives = ",".join([f"DNS:{host}" for host in hosts] + [f"IP:{address}" for address in addresses])
    with tempfile.TemporaryDirectory(prefix="loadkit-sink-tls-") as folder:
        certificate_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        command = [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-sha256", "-days", str(CERTIFICATE_DAYS), "-subj", f"/CN={name}",
            "-addext", f"subjectAltName={alternatives}", "-keyout", key_path, "-out", certificate_path,
        ]
        try:
            subprocess.run(command, capture_output=True, check=True, timeout=60)
            with open(certificate_path, "rb") as certificate, open(key_path, "rb") as key:
                return certificate.read(), key.read()
        except (OSError, subprocess.SubprocessError) as error:
            detail = getattr(error, "stderr", b"") or b""
            last = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(error)]
            raise TlsSetupError(f"cannot make a TLS certificate with openssl: {last[0]}") from None
