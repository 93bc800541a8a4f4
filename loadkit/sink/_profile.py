"""What every session of one sink shares: names, limits, capabilities, policies.

A `SinkProfile` turns a server's settings into what its sessions read on
every command: the banner and EHLO replies made once, the verb table, the
session class. It sits above the sessions (`loadkit.sink._protocol`, and
`loadkit.sink._full` which subclasses them), so the sessions never import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadkit.sink._auth import Authenticator
from loadkit.sink._buffers import BufferBudget
from loadkit.sink._dkim import DkimVerifier
from loadkit.sink._faults import FaultPlan, Greylist
from loadkit.sink._full import session_class_for
from loadkit.sink._protocol import DEFAULT_CAPABILITIES, DEFAULT_MAX_SIZE, SmtpSession
from loadkit.sink._rules import RecipientRules
from loadkit.sink._stats import SinkStats
from loadkit.sink._store import MaildirStore


@dataclass
class SinkProfile:
    """What every session of one server shares: names, limits, capabilities, policies.

    `capabilities` is plain data: the EHLO/LHLO keywords in the order they
    are advertised; "SIZE" is advertised with `max_size` (0 means no limit),
    "AUTH" with the authenticator's mechanisms. STARTTLS is advertised only
    with `tls` on and before TLS; AUTH after TLS, and before it only with
    `plaintext_auth` (`SinkSettings` turns it on for loopback and unix sockets).
    Without ENHANCEDSTATUSCODES the owner strips the codes from replies.
    `esmtp=False` is smtp-sink's ``-e``: EHLO is unknown, nothing advertised.

    `session_class` is chosen once from what is turned on: the plain
    classes when only counting is asked for, `loadkit.sink._full`'s when
    trace, store, faults, greylisting or rules are (see that module).

    The profile takes its values as given: they were checked once, in
    `loadkit.sink.SinkSettings`, from which the server builds it.
    """

    hostname: str = "loadkit-sink"
    lmtp: bool = False
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    max_size: int = DEFAULT_MAX_SIZE
    max_messages: int | None = None
    greeting: str | None = None  # the banner's text after the hostname
    esmtp: bool = True
    tls: bool = False  # a TLS context is ready: STARTTLS may be offered
    authenticator: Authenticator | None = None
    plaintext_auth: bool = False
    faults: FaultPlan | None = None
    greylist: Greylist | None = None
    rules: RecipientRules | None = None
    store: MaildirStore | None = None
    buffers: BufferBudget | None = None  # what the store may hold in memory; None: unbounded
    trace: bool = False
    dkim: DkimVerifier | None = None
    banner: bytes = field(init=False)
    helo_reply: bytes = field(init=False)
    ehlo_plain: bytes = field(init=False)  # before TLS
    ehlo_tls: bytes = field(init=False)  # after TLS
    enhanced_codes: bool = field(init=False)
    session_class: type = field(init=False)
    verbs: dict = field(init=False)  # b"MAIL" -> the function that answers it

    def __post_init__(self) -> None:
        host = self.hostname
        greeting = self.greeting
        if greeting is None:
            greeting = ("LMTP loadkit" if self.lmtp else "ESMTP loadkit") if self.esmtp else "loadkit"
        self.banner = f"220 {host} {greeting}".rstrip().encode() + b"\r\n"
        self.helo_reply = f"250 {host}\r\n".encode()
        self.ehlo_plain = self._ehlo_reply(tls=False)
        self.ehlo_tls = self._ehlo_reply(tls=True)
        self.enhanced_codes = "ENHANCEDSTATUSCODES" in self.capabilities and self.esmtp
        self.session_class = session_class_for(self)
        self.verbs = self._verb_table()

    def advertises(self, keyword: str) -> bool:
        return self.esmtp and keyword in self.capabilities

    def offers_auth(self, tls: bool) -> bool:
        return self.authenticator is not None and self.advertises("AUTH") and (tls or self.plaintext_auth)

    def _ehlo_reply(self, tls: bool) -> bytes:
        keywords = [self.hostname]
        for name in self.capabilities:
            if name == "SIZE":
                keywords.append(f"SIZE {self.max_size}" if self.max_size else "SIZE")
            elif name == "STARTTLS":
                if self.tls and not tls:
                    keywords.append(name)
            elif name == "AUTH":
                if self.offers_auth(tls):
                    keywords.append("AUTH " + " ".join(self.authenticator.mechanisms))
            else:
                keywords.append(name)
        lines = [f"250-{word}" for word in keywords[:-1]] + [f"250 {keywords[-1]}"]
        return ("\r\n".join(lines) + "\r\n").encode()

    def _verb_table(self) -> dict:
        """The verbs this profile answers; unadvertised extensions are unknown commands."""
        cls = self.session_class
        hidden = {"HELO", "EHLO"} if self.lmtp else {"LHLO"}
        if not self.esmtp:
            hidden |= {"EHLO", "STARTTLS", "AUTH", "BDAT"}
        if not (self.tls and self.advertises("STARTTLS")):
            hidden.add("STARTTLS")
        if self.authenticator is None or not self.advertises("AUTH"):
            hidden.add("AUTH")
        if not self.advertises("CHUNKING"):
            hidden.add("BDAT")
        verbs = {
            name[5:].encode(): getattr(cls, name)
            for name in dir(cls)
            if name.startswith("smtp_") and name[5:] not in hidden
        }
        if self.faults is not None:
            verbs = self.faults.wrap_verbs(verbs)
        return verbs

    def new_session(self, stats: SinkStats, on_limit=None, peer: str = "", tls: bool = False) -> SmtpSession:
        """A session of this profile's class."""
        return self.session_class(self, stats, on_limit, peer, tls)
