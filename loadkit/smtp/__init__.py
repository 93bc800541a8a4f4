"""loadkit's SMTP/LMTP client: pipelined, timed per phase, with a clear error tree.

`__all__` lists every public error the package raises (a test says so).
"""

from loadkit.smtp._client import Delivery, SmtpClient, stuff_dots
from loadkit.smtp._errors import (
    SMTPConnectError,
    SMTPDisconnected,
    SMTPError,
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTransportError,
)
from loadkit.smtp._reply import Reply

__all__ = [
    "Delivery",
    "Reply",
    "SMTPConnectError",
    "SMTPDisconnected",
    "SMTPError",
    "SMTPNotSupportedError",
    "SMTPProtocolError",
    "SMTPReplyError",
    "SMTPTimeoutError",
    "SMTPTransportError",
    "SmtpClient",
    "stuff_dots",
]
