"""Where load goes and where servers listen: URL and smtp-source style endpoints.

Two spellings reach the same `Target`:

- Locust host URLs (``-H``): ``smtp://host[:port]``, ``lmtp://host[:port]``,
  ``lmtp+unix:///path/to/socket`` (and ``smtp+unix://`` for symmetry);
  ``smtps://host[:465]`` for implicit TLS, ``submission://host[:587]`` for
  STARTTLS required. Credentials ride in the URL: ``smtp://user:pass@host``.
- Postfix's ``smtp-source``/``smtp-sink`` endpoints: ``[inet:]host[:port]``
  and ``unix:pathname``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from loadkit.errors import LoadkitError

DEFAULT_PORTS = {"smtp": 25, "lmtp": 24}
# scheme -> (protocol, TLS mode, default port)
URL_SCHEMES = {
    "smtp": ("smtp", "", 25),
    "lmtp": ("lmtp", "", 24),
    "smtps": ("smtp", "implicit", 465),
    "submission": ("smtp", "starttls", 587),
}
UNIX_SCHEMES = {"smtp+unix": "smtp", "lmtp+unix": "lmtp"}


class TargetError(LoadkitError, ValueError):
    """A target or listen address that cannot be used; the message says why."""


@dataclass(frozen=True)
class Target:
    protocol: str  # "smtp" or "lmtp"
    host: str | None = None
    port: int | None = None
    path: str | None = None  # a UNIX-domain socket instead of host:port
    tls: str = ""  # "" (plain, STARTTLS only when asked), "starttls" (required), "implicit"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    @property
    def address(self):
        """What `socket.connect` / `bind` takes."""
        return self.path if self.is_unix else (self.host, self.port)

    def url(self) -> str:
        """The URL without credentials (safe to print and to write into results)."""
        if self.is_unix:
            return f"{self.protocol}+unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = {"implicit": "smtps", "starttls": "submission"}.get(self.tls, self.protocol)
        return f"{scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url()


def _port(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise TargetError(f"{what}: port {text!r} is not a number")
    port = int(text)
    if not 0 <= port <= 65535:
        raise TargetError(f"{what}: port {port} is out of range (0-65535)")
    return port


def parse_url(url: str | None) -> Target:
    """Parse a Locust host URL such as ``smtp://127.0.0.1:2525``."""
    if not url:
        raise TargetError(
            "no host given: pass one with -H, e.g. -H smtp://127.0.0.1:2525 "
            "or -H lmtp+unix:///run/dovecot/lmtp"
        )
    scheme, separator, rest = url.partition("://")
    if not separator or (scheme not in URL_SCHEMES and scheme not in UNIX_SCHEMES):
        raise TargetError(
            f"unsupported host {_without_password(url)!r}: use smtp://host[:port], smtps://, submission://, "
            "lmtp://host[:port] or lmtp+unix:///path"
        )
    if scheme in UNIX_SCHEMES:
        path = unquote(rest)
        if not path.startswith("/"):
            raise TargetError(f"{url}: a unix socket URL needs an absolute path, e.g. {scheme}:///run/lmtp")
        return Target(UNIX_SCHEMES[scheme], path=path)
    protocol, tls, default_port = URL_SCHEMES[scheme]
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as error:  # urllib's message for a bad port is already readable
        raise TargetError(f"{_without_password(url)}: {error}") from None
    if not host:
        raise TargetError(f"{_without_password(url)}: no host name")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return Target(
        protocol, host=host, port=default_port if port is None else port,
        tls=tls, username=username, password=password,
    )


def _without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    return f"{scheme}://{credentials.partition(':')[0]}:***@{location}" if at else url


def parse_endpoint(text: str, protocol: str = "smtp") -> Target:
    """Parse smtp-source's ``[inet:]host[:port]`` or ``unix:pathname``."""
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise TargetError(f"{text}: no socket path")
        return Target(protocol, path=path)
    rest = text[len("inet:"):] if text.startswith("inet:") else text
    host, port = _split_host_port(rest, text)
    if not host:
        raise TargetError(f"{text}: no host name")
    return Target(protocol, host=host, port=DEFAULT_PORTS[protocol] if port is None else port)


def parse_listen(text: str, protocol: str = "smtp", default_host: str = "127.0.0.1") -> Target:
    """Parse smtp-sink's ``[inet:][host]:port`` or ``unix:pathname``.

    A bare port (``2525`` or ``:2525``) binds loopback: being reachable from
    other machines has to be asked for by naming the address.
    """
    if text.startswith("unix:"):
        return parse_endpoint(text, protocol)
    rest = text[len("inet:"):] if text.startswith("inet:") else text
    if rest.isascii() and rest.isdigit():
        rest = ":" + rest
    host, port = _split_host_port(rest, text)
    if port is None:
        raise TargetError(f"{text}: no port; listen on [host]:port, e.g. 127.0.0.1:2525")
    return Target(protocol, host=host or default_host, port=port)


def _split_host_port(rest: str, original: str) -> tuple[str, int | None]:
    if rest.startswith("["):  # [::1]:25
        host, bracket, tail = rest[1:].partition("]")
        if not bracket:
            raise TargetError(f"{original}: missing ']' after an IPv6 address")
        if not tail:
            return host, None
        if not tail.startswith(":"):
            raise TargetError(f"{original}: expected ':port' after ']'")
        return host, _port(tail[1:], original)
    if rest.count(":") > 1:  # a bare IPv6 address without a port
        return rest, None
    host, colon, port = rest.partition(":")
    return host, (_port(port, original) if colon else None)
