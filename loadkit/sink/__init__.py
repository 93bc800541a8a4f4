"""The sink: a fast discard SMTP/LMTP server, loadkit's ``smtp-sink``.

It accepts every well-formed transaction, counts it exactly (`SinkStats`)
and throws the message away. Embed it next to Locust users or in tests::

    from loadkit.sink import FaultPlan, SinkServer

    faults = FaultPlan(seed=1).reject("rcpt", 550, rate=0.05).delay("data", "lognormal:10ms:3")
    with SinkServer("127.0.0.1:0", lmtp=True, faults=faults) as sink:
        host, port = sink.address
        ...
    sink.stats.as_dict()  # {"sessions": ..., "messages": ..., "faults": ..., ...}

The keywords are those of `SinkSettings`, which holds them, checked once
(``SinkServer(SinkSettings("127.0.0.1:0", lmtp=True))`` is the same server).

or run it from the command line: ``loadkit sink 127.0.0.1:2525`` (see
``loadkit sink --help``). It speaks ESMTP with STARTTLS (or implicit TLS),
AUTH, SIZE, 8BITMIME, SMTPUTF8, DSN and CHUNKING, each of which can be
turned off; it can reject, disconnect, delay, drip and greylist on purpose,
keep messages in a maildir, and read loadkit's trace header to measure
delivery time and find duplicates.
"""

from loadkit.sink._auth import Authenticator
from loadkit.sink._control import change_faults
from loadkit.sink._errors import SinkError
from loadkit.sink._faults import Delay, FaultError, FaultPlan, Greylist
from loadkit.sink._profile import SinkProfile
from loadkit.sink._protocol import DEFAULT_CAPABILITIES, DEFAULT_MAX_SIZE, MAX_LINE, LmtpSession, SmtpSession
from loadkit.sink._rules import RecipientRules, RulesError
from loadkit.sink._server import SinkServer
from loadkit.sink._settings import DEFAULT_TIMEOUT, SinkSettings
from loadkit.sink._stats import SinkStats, TraceStats
from loadkit.sink._store import MaildirStore
from loadkit.sink._tls import TlsSetupError

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TIMEOUT",
    "MAX_LINE",
    "Authenticator",
    "Delay",
    "FaultError",
    "FaultPlan",
    "Greylist",
    "LmtpSession",
    "MaildirStore",
    "RecipientRules",
    "RulesError",
    "SinkError",
    "SinkProfile",
    "SinkServer",
    "SinkSettings",
    "SinkStats",
    "SmtpSession",
    "TlsSetupError",
    "TraceStats",
    "change_faults",
]
