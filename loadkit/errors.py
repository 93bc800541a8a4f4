"""loadkit's one error root.

Every error loadkit raises on purpose derives from ``LoadkitError``, whose
message is one line for people: the ``loadkit`` command prints it as
``loadkit COMMAND: error: MESSAGE`` and exits 2, never with a traceback.

    LoadkitError
    ├── UsageError          bad input on the command line or in a setting
    ├── smtp.SMTPError      one failed SMTP/LMTP exchange (see loadkit.smtp)
    ├── ResultsError        a results folder that cannot be read or written
    ├── ThresholdError      a threshold that cannot be parsed or measured
    ├── TargetError         a target URL that loadkit cannot use
    ├── InstanceError       a loopback Postfix/Dovecot/Apache that cannot run
    ├── SinkError           a sink that cannot start as configured
    └── ...                 each package's own, exported from the package

Each package exports the errors it raises (``__all__``); a test fails when a
raised public error is not exported.
"""

from __future__ import annotations

__all__ = ["LoadkitError", "UsageError"]


class LoadkitError(Exception):
    """Something went wrong in a way loadkit can explain in one line."""


class UsageError(LoadkitError):
    """Bad input or an unusable environment: one line for the user, exit code 2."""
