"""The exception tree of the SMTP/LMTP client, under loadkit's one root.

    LoadkitError (loadkit.errors)
    └── SMTPError                     anything that stopped a session or transaction
        ├── SMTPTransportError        the connection itself failed
        │   ├── SMTPConnectError      refused, unreachable, name does not resolve
        │   ├── SMTPTimeoutError      no reply within the timeout
        │   └── SMTPDisconnected      the server closed the connection
        ├── SMTPProtocolError         the server sent something that is not a reply
        ├── SMTPNotSupportedError     the message needs what the server does not offer
        │                             (STARTTLS, AUTH, SMTPUTF8, 8BITMIME, DSN, a big enough SIZE)
        └── SMTPReplyError            a negative reply: code, enhanced code, text, phase

Every error knows its `phase`: the step that failed (connect, tls, banner,
helo, starttls, auth, rset, mail, rcpt, data, end-of-data, quit); with
PIPELINING too it names the command whose reply failed, never ``envelope``.
`repr()` of an error is a short key without server text ("550 5.1.1 at
RCPT", "timeout at BANNER") because Locust groups failures by it; `str()`
carries the full text for people.
"""

from __future__ import annotations

from loadkit.errors import LoadkitError
from loadkit.smtp._reply import Reply


class SMTPError(LoadkitError):
    """Base of every client error; a `loadkit.errors.LoadkitError`, so the CLI prints it in one line."""

    kind = "error"

    def __init__(self, message: str, phase: str):
        super().__init__(message)
        self.phase = phase

    @property
    def key(self) -> str:
        return f"{self.kind} at {self.phase.upper()}"

    def __repr__(self) -> str:
        return self.key


class SMTPTransportError(SMTPError):
    """The TCP/UNIX connection failed; the session is unusable afterwards."""

    kind = "transport error"


class SMTPConnectError(SMTPTransportError):
    kind = "connect failed"


class SMTPTimeoutError(SMTPTransportError):
    kind = "timeout"


class SMTPDisconnected(SMTPTransportError):
    kind = "connection closed"


class SMTPProtocolError(SMTPError):
    kind = "protocol error"


class SMTPNotSupportedError(SMTPError):
    """Refused by the client before sending: the server lacks an extension the message needs."""

    kind = "not supported"

    def __init__(self, message: str, phase: str, extension: str, label: str | None = None):
        super().__init__(message, phase)
        self.extension = extension
        self.label = label or f"{extension} not supported"  # the key's text, when "not supported" is not the reason

    @property
    def key(self) -> str:
        return f"{self.label} at {self.phase.upper()}"


class SMTPReplyError(SMTPError):
    """A 4xx/5xx (or unexpected) reply; `recipient` is set for per-recipient replies."""

    def __init__(self, reply: Reply, phase: str, recipient: str | None = None):
        super().__init__(f"{reply} at {phase.upper()}" + (f" for <{recipient}>" if recipient else ""), phase)
        self.reply = reply
        self.recipient = recipient

    @property
    def code(self) -> int:
        return self.reply.code

    @property
    def enhanced_code(self) -> str | None:
        return self.reply.enhanced_code

    @property
    def text(self) -> str:
        return self.reply.text

    @property
    def key(self) -> str:
        enhanced = f" {self.reply.enhanced_code}" if self.reply.enhanced_code else ""
        return f"{self.reply.code}{enhanced} at {self.phase.upper()}"
