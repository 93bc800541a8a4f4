"""SMTP AUTH for the sink (RFC 4954): PLAIN, LOGIN and CRAM-MD5, server side.

An `Authenticator` accepts every user and password, or only those of a
``user:password`` file (one a line; blank lines and ``#`` comments skipped;
the password is everything after the first colon). A `SaslExchange` is one
AUTH command with its challenges and answers; the session feeds it the
client's lines and reads `done`, `user` and `failed`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import time

DEFAULT_MECHANISMS = ("PLAIN", "LOGIN")
MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")

S235_AUTHENTICATED = b"235 2.7.0 Authentication successful\r\n"
S334_EMPTY = b"334 \r\n"
S334_USERNAME = b"334 VXNlcm5hbWU6\r\n"  # "Username:"
S334_PASSWORD = b"334 UGFzc3dvcmQ6\r\n"  # "Password:"
S501_ABORTED = b"501 5.7.0 Authentication aborted\r\n"
S501_UNDECODABLE = b"501 5.5.2 Error: cannot decode response\r\n"
S501_SYNTAX = b"501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"
S504_MECHANISM = b"504 5.5.4 Error: unsupported authentication mechanism\r\n"
S535_FAILED = b"535 5.7.8 Error: authentication failed\r\n"


def checked_mechanisms(names) -> tuple[str, ...]:
    """The mechanism names upper-cased; ValueError naming any this sink does not speak."""
    mechanisms = tuple(name.upper() for name in names)
    unknown = [name for name in mechanisms if name not in MECHANISMS]
    if unknown or not mechanisms:
        raise ValueError(f"unknown AUTH mechanism {', '.join(unknown) or '(none)'}: use {', '.join(MECHANISMS)}")
    return mechanisms


class Authenticator:
    """Who may log in: everyone (`users` None) or the pairs of `users`."""

    def __init__(self, users: dict[str, str] | None = None, mechanisms=DEFAULT_MECHANISMS):
        self.users = users
        self.mechanisms = checked_mechanisms(mechanisms)

    @classmethod
    def from_file(cls, path: str, mechanisms=DEFAULT_MECHANISMS) -> "Authenticator":
        return cls(load_users(path), mechanisms)

    def check(self, user: str, password: str) -> bool:
        if self.users is None:
            return True
        expected = self.users.get(user)
        return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

    def check_cram_md5(self, user: str, challenge: bytes, digest: str) -> bool:
        if self.users is None:
            return True
        password = self.users.get(user)
        if password is None:
            return False
        expected = hmac.new(password.encode(), challenge, "md5").hexdigest()
        return hmac.compare_digest(expected, digest.lower())


def load_users(path: str) -> dict[str, str]:
    """``user:password`` lines -> {user: password}; ValueError says which line is wrong."""
    users = {}
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            user, colon, password = line.partition(":")
            if not colon or not user:
                raise ValueError(f"{path}:{number}: expected user:password")
            users[user] = password
    return users


class SaslExchange:
    """One AUTH command: `start` with its argument, then `answer` each client line until `done`."""

    __slots__ = ("authenticator", "hostname", "mechanism", "done", "user", "failed", "_login_user", "_challenge")

    def __init__(self, authenticator: Authenticator, hostname: str):
        self.authenticator = authenticator
        self.hostname = hostname
        self.mechanism = ""
        self.done = False
        self.user: str | None = None  # set when authenticated
        self.failed = False  # wrong credentials or an undecodable answer
        self._login_user: str | None = None
        self._challenge = b""

    def start(self, argument: bytes) -> bytes:
        words = argument.split()
        if not words or len(words) > 2:
            return self._end(S501_SYNTAX)
        self.mechanism = mechanism = words[0].upper().decode("ascii", "replace")
        if mechanism not in self.authenticator.mechanisms:
            return self._end(S504_MECHANISM)
        initial = words[1] if len(words) == 2 else None
        if mechanism == "PLAIN":
            return S334_EMPTY if initial is None else self._plain(initial)
        if mechanism == "LOGIN":
            return S334_USERNAME if initial is None else self._login(initial)
        if initial is not None:  # CRAM-MD5 has no initial response
            return self._end(S501_SYNTAX)
        self._challenge = f"<{int.from_bytes(os.urandom(6), 'big')}.{int(time.time())}@{self.hostname}>".encode()
        return b"334 " + base64.b64encode(self._challenge) + b"\r\n"

    def answer(self, line: bytes) -> bytes:
        if line.strip() == b"*":
            return self._end(S501_ABORTED)
        if self.mechanism == "PLAIN":
            return self._plain(line)
        if self.mechanism == "LOGIN":
            return self._login(line)
        decoded = _decode(line)
        if decoded is None:
            return self._fail(S501_UNDECODABLE)
        user, _, digest = decoded.rpartition(" ")
        if user and self.authenticator.check_cram_md5(user, self._challenge, digest):
            return self._succeed(user)
        return self._fail(S535_FAILED)

    def _plain(self, text: bytes) -> bytes:
        decoded = "" if text == b"=" else _decode(text)
        if decoded is None:
            return self._fail(S501_UNDECODABLE)
        parts = decoded.split("\0")
        if len(parts) != 3:
            return self._fail(S535_FAILED)
        _authzid, user, password = parts
        if user and self.authenticator.check(user, password):
            return self._succeed(user)
        return self._fail(S535_FAILED)

    def _login(self, text: bytes) -> bytes:
        decoded = "" if text == b"=" else _decode(text)
        if decoded is None:
            return self._fail(S501_UNDECODABLE)
        if self._login_user is None:
            self._login_user = decoded
            return S334_PASSWORD
        if self._login_user and self.authenticator.check(self._login_user, decoded):
            return self._succeed(self._login_user)
        return self._fail(S535_FAILED)

    def _succeed(self, user: str) -> bytes:
        self.user = user
        return self._end(S235_AUTHENTICATED)

    def _fail(self, reply: bytes) -> bytes:
        self.failed = True
        return self._end(reply)

    def _end(self, reply: bytes) -> bytes:
        self.done = True
        return reply


def _decode(text: bytes) -> str | None:
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
