"""SMTP AUTH (RFC 4954): PLAIN, LOGIN and CRAM-MD5 as the client side of each exchange.

Each mechanism is a generator: it yields what to send (the first value is
the AUTH command line) and receives the server's 334 challenge, decoded.
The client drives it, so the wire and the timing stay in one place.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFERENCE = ("PLAIN", "LOGIN", "CRAM-MD5")


def _b64(text: bytes) -> bytes:
    return base64.b64encode(text)


def plain(username: str, password: str):
    yield b"AUTH PLAIN " + _b64(b"\0" + username.encode() + b"\0" + password.encode())


def login(username: str, password: str):
    yield b"AUTH LOGIN"
    yield _b64(username.encode())
    yield _b64(password.encode())


def cram_md5(username: str, password: str):
    challenge = yield b"AUTH CRAM-MD5"
    digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
    yield _b64(f"{username} {digest}".encode())


MECHANISMS = {"PLAIN": plain, "LOGIN": login, "CRAM-MD5": cram_md5}


def choose(offered: str, wanted: str | None) -> str | None:
    """The mechanism to use: the wanted one if offered, else the first of PREFERENCE offered."""
    names = set(offered.upper().split())
    if wanted:
        return wanted.upper() if wanted.upper() in names else None
    return next((name for name in PREFERENCE if name in names), None)


def decode_challenge(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        return b""
