"""loadkit's one error root.

Every error loadkit raises on purpose derives from ``LoadkitError``, whose
message is one line for people: the ``loadkit`` command prints it as
``loadkit COMMAND: error: MESSAGE`` and exits 2, never with a traceback.

    LoadkitError
    ├── UsageError                  bad input on the command line or in a setting
    ├── smtp.SMTPError              one failed SMTP/LMTP exchange (its own tree: loadkit.smtp)
    ├── sink.SinkError              a sink that cannot listen or run as configured
    ├── sink.FaultError             a fault specification (--reject, --delay, ...) that cannot be used
    ├── sink.TlsSetupError          no usable certificate for the sink
    ├── report.ReportError          results that cannot be turned into a report
    ├── report.HistogramError       a histogram that cannot be decoded
    ├── report.LocustJsonError      a file that is not Locust's JSON stats
    ├── results.ResultsError        a results folder that cannot be made or written
    ├── thresholds.ThresholdError   a threshold that cannot be parsed or measured
    ├── targets.TargetError         a target URL or listen address loadkit cannot use
    ├── instances.InstanceError     a loopback Postfix/Dovecot/Apache that cannot run
    │   └── MissingPackages         ... because Debian packages are missing
    ├── probes.ProbeError           a probe that cannot read its source
    ├── e2e_clock.ClockError        a sink that did not say its clock
    ├── users.SetupError            a user class set up with something unusable
    └── dkim.DkimError              a DKIM key or setting that cannot be used

Errors about a bad value (TargetError, FaultError, HistogramError, ...) are
ValueErrors too, for callers that catch those. A command raises them as they are (no wrapping to print them): the
CLI catches `LoadkitError`. A command's own mistakes about its options are
`UsageError`.

Each package exports the errors it raises (``__all__``); a test fails when a
raised public error is not exported.
"""

from __future__ import annotations

__all__ = ["LoadkitError", "UsageError"]


class LoadkitError(Exception):
    """Something went wrong in a way loadkit can explain in one line."""


class UsageError(LoadkitError):
    """Bad input or an unusable environment: one line for the user, exit code 2."""
