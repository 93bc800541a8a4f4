"""The sink: a fast discard SMTP/LMTP server, loadkit's ``smtp-sink``.

It accepts every well-formed transaction, counts it exactly (`SinkStats`)
and throws the message away. Embed it next to Locust users or in tests::

    from loadkit.sink import SinkServer

    with SinkServer("127.0.0.1:0", lmtp=True) as sink:
        host, port = sink.address
        ...
    sink.stats.as_dict()  # {"sessions": ..., "messages": ..., ...}

or run it from the command line: ``loadkit sink 127.0.0.1:2525``.
"""

from loadkit.sink._protocol import (
    DEFAULT_CAPABILITIES,
    DEFAULT_MAX_SIZE,
    MAX_LINE,
    LmtpSession,
    SinkProfile,
    SmtpSession,
)
from loadkit.sink._server import DEFAULT_TIMEOUT, SinkError, SinkServer
from loadkit.sink._stats import SinkStats

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TIMEOUT",
    "MAX_LINE",
    "LmtpSession",
    "SinkError",
    "SinkProfile",
    "SinkServer",
    "SinkStats",
    "SmtpSession",
]
