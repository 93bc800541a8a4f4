"""What a sink is asked to be: one frozen `SinkSettings`, checked once.

``loadkit sink`` builds it from its options (`loadkit.sink.command`);
Python builds it with keywords, directly or through `SinkServer`::

    SinkServer(SinkSettings("127.0.0.1:0", lmtp=True, faults=plan))
    SinkServer("127.0.0.1:0", lmtp=True, faults=plan)          # the same

Every mistake in the settings themselves is found here, with one message
naming the command-line option (a keyword is the option's long name:
``--store-max`` is ``store_max``; ``-M`` is ``max_messages``, ``-t``
``timeout``, ``--size`` ``max_size``), raised as `SinkError`. What needs the
file system (the certificate, the users file, the maildir, the trace log)
is checked when a server is made from the settings.

`faults`, `greylist` and `rules` are used by the server as they are, and
keep state of their own (random draws, triplets seen, counts): give each
server its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from loadkit.sink._auth import DEFAULT_MECHANISMS, checked_mechanisms
from loadkit.sink._buffers import DEFAULT_MAX_BUFFER, DEFAULT_MAX_BUFFER_TOTAL
from loadkit.sink._errors import SinkError
from loadkit.sink._faults import FaultPlan, Greylist
from loadkit.sink._protocol import DEFAULT_CAPABILITIES, DEFAULT_MAX_SIZE, KNOWN_CAPABILITIES
from loadkit.sink._rules import RecipientRules
from loadkit.urls import Target, TargetError, parse_listen

DEFAULT_TIMEOUT = 100.0  # seconds of client silence before 421, as smtp-sink
DEFAULT_BACKLOG = 1024


@dataclass(frozen=True)
class SinkSettings:
    """Where the sink listens, what it offers, and how it misbehaves on purpose.

    listen           a `Target`, or smtp-sink's ``[inet:][host]:port`` /
                     ``unix:path`` text; port 0 binds a free port
    lmtp             speak LMTP (``-L``); None: as the target's protocol says
    hostname         the name in the greeting and the HELO/EHLO reply (``-h``)
    max_messages     stop after answering that many messages (``-M``)
    timeout          seconds of client silence before 421 (``-t``)
    backlog          the listen queue's length
    capabilities     the EHLO keywords offered (`DEFAULT_CAPABILITIES`); one
                     left out is neither advertised nor accepted
    max_size         SIZE limit in bytes, for MAIL SIZE= and the data (0: none)
    esmtp            False: EHLO is an unknown command (smtp-sink ``-e``)
    greeting         the banner's text after the host name
    tls_cert/tls_key PEM files; without them a self-signed certificate is
                     made at the first STARTTLS
    implicit_tls     TLS from the first byte (smtps, port 465 style)
    auth_users       None: AUTH accepts everyone; a {user: password} mapping
                     or the path of a ``user:password`` file
    auth_mechanisms  offered mechanisms (PLAIN, LOGIN, CRAM-MD5)
    auth_plaintext   offer AUTH before TLS; None: yes when listening on
                     loopback or a unix socket (every client is local)
    faults           a `FaultPlan` (rejects, disconnects, delays, drips)
    greylist         a `Greylist`, or seconds of greylisting delay
    store, store_max keep messages as maildir files there, at most that many
    max_buffer       bytes of its message one session may hold for the store
                     (past it: 552); max_buffer_total, all sessions (451)
    trace            read X-Loadkit-Trace headers into the stats (default on)
    trace_log        append one line per traced message to that file
    dkim_verify      a DKIM public key file or a folder of them: verify every
                     accepted message's signature (`loadkit.sink._dkim`)
    rules            a `RecipientRules`, or the path of a rules file, read
                     here (`loadkit.sink._rules`): answers by recipient
    control          where the control port listens (``127.0.0.1:0``): faults
                     changed during the run (`loadkit.sink._control`)
    """

    listen: Target | str
    lmtp: bool | None = None
    hostname: str = "loadkit-sink"
    max_messages: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    backlog: int = DEFAULT_BACKLOG
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    max_size: int = DEFAULT_MAX_SIZE
    esmtp: bool = True
    greeting: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    implicit_tls: bool = False
    auth_users: Mapping[str, str] | str | None = None
    auth_mechanisms: tuple[str, ...] = DEFAULT_MECHANISMS
    auth_plaintext: bool | None = None
    faults: FaultPlan | None = None
    greylist: Greylist | float | None = None
    store: str | None = None
    store_max: int | None = None
    max_buffer: int = DEFAULT_MAX_BUFFER
    max_buffer_total: int = DEFAULT_MAX_BUFFER_TOTAL
    trace: bool = True
    trace_log: str | None = None
    dkim_verify: str | None = None
    rules: RecipientRules | str | None = None
    control: str | None = None

    def __post_init__(self) -> None:
        listen = self.listen
        if isinstance(listen, str):
            try:
                listen = parse_listen(listen)
            except TargetError as error:
                raise SinkError(str(error)) from None
        lmtp = listen.protocol == "lmtp" if self.lmtp is None else bool(self.lmtp)
        # smtps:// names implicit TLS; there is no such scheme for LMTP.
        listen = Target("lmtp" if lmtp else "smtp", listen.host, listen.port, listen.path,
                        tls="implicit" if self.implicit_tls and not lmtp else "")
        greylist = self.greylist
        if isinstance(greylist, (int, float)) and not isinstance(greylist, bool):
            greylist = Greylist(delay=float(greylist))
        try:
            mechanisms = checked_mechanisms(self.auth_mechanisms)
        except ValueError as error:
            raise SinkError(str(error)) from None
        settle = object.__setattr__  # frozen: the normal forms are written once, here
        settle(self, "listen", listen)
        settle(self, "lmtp", lmtp)
        settle(self, "capabilities", tuple(self.capabilities))
        settle(self, "auth_mechanisms", mechanisms)
        settle(self, "greylist", greylist)
        settle(self, "faults", self.faults or None)  # an empty plan is no plan: the fast loop stays on
        if isinstance(self.rules, str):
            settle(self, "rules", RecipientRules.from_file(self.rules))
        if self.control is not None:
            settle(self, "control", _control_address(self.control))
        if self.auth_plaintext is None:
            settle(self, "auth_plaintext", _is_local(listen))
        problem = self._problem()
        if problem:
            raise SinkError(problem)

    def _problem(self) -> str | None:
        """The first mistake, in one line; None when there is none."""
        unknown = set(self.capabilities) - KNOWN_CAPABILITIES
        if unknown:
            return f"unknown capabilities: {', '.join(sorted(unknown))}"
        if self.lmtp and not self.esmtp:
            return "-e cannot go with -L: LMTP has no HELO to fall back to"
        if self.max_messages is not None and self.max_messages < 1:
            return f"-M {self.max_messages}: must be at least 1"
        if not self.timeout > 0:
            return f"-t {self.timeout}: must be more than 0 seconds"
        if self.backlog < 1:
            return f"backlog {self.backlog}: must be at least 1"
        if self.max_size < 0:
            return f"--size {self.max_size}: must be 0 (no limit) or more"
        if self.tls_key and not self.tls_cert:
            return "--tls-key needs --tls-cert"
        if self.store_max is not None and not self.store:
            return "--store-max needs --store"
        if self.store_max is not None and self.store_max < 1:
            return f"--store-max {self.store_max}: must be at least 1"
        if self.max_buffer < 1 or self.max_buffer_total < 1:
            return "--max-buffer and --max-buffer-total must be at least 1 byte"
        if self.max_buffer > self.max_buffer_total:
            return f"--max-buffer {self.max_buffer} is more than --max-buffer-total {self.max_buffer_total}"
        if self.trace_log and not self.trace:
            return "--trace-log needs the traces read: drop --no-trace"
        return None

    @property
    def offers_starttls(self) -> bool:
        """STARTTLS is in what the sessions may offer (if a certificate can be had)."""
        return self.esmtp and "STARTTLS" in self.capabilities

    @property
    def offers_auth(self) -> bool:
        return self.esmtp and "AUTH" in self.capabilities


def _control_address(text: str) -> str:
    """``127.0.0.1:0`` as given; a SinkError when it is not HOST:PORT."""
    host, colon, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not colon or not port.isdigit() or int(port) > 65535:
        raise SinkError(f"--control {text!r}: use HOST:PORT, e.g. 127.0.0.1:0")
    return f"{host}:{port}"


def _is_local(target: Target) -> bool:
    """A unix socket or a loopback address: every client is on this machine."""
    if target.is_unix:
        return True
    if target.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(target.host).is_loopback
    except ValueError:
        return False
