"""TLS for the client: gevent's ssl, verification on unless asked otherwise."""

from __future__ import annotations

from functools import cache

from gevent import ssl


@cache  # loading the CA store costs ~20 ms: one context per setting, shared by every client
def client_context(verify: bool = True, cafile: str | None = None) -> ssl.SSLContext:
    """A context for STARTTLS and implicit TLS.

    Verification (certificate chain and host name) is on by default, as a
    mail client should be; ``verify=False`` is for test targets with
    self-signed certificates (``--tls-no-verify``, the `tls_verify` tunable).
    """
    if not verify:
        # No CA store: OpenSSL still builds the peer's chain under CERT_NONE, and searching the
        # system's CA folder for it costs ~140 us of a ~1 ms handshake, for a result it ignores.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=cafile)
