"""The phases of an SMTP/LMTP session, in protocol order: the one list every reader sorts by.

A phase is one timing boundary of the client (`loadkit.smtp.SmtpClient`):
the times it puts in ``timings`` are keyed by these names, and the report,
thresholds (``phase.NAME:...``) and a user's ``phase_stats`` rows use them.

    connect      TCP (or UNIX socket) connect
    tls          the TLS handshake alone (implicit TLS, or after STARTTLS)
    banner       the server's 220 greeting
    helo         EHLO / LHLO (HELO on a 5xx), and again after STARTTLS
    starttls     the STARTTLS command's round trip
    auth         AUTH, every round trip of the mechanism
    rset         RSET before a transaction that follows a failed one
    envelope     with PIPELINING: MAIL, every RCPT and DATA in one round trip
    mail         without PIPELINING: MAIL
    rcpt         without PIPELINING: every RCPT
    data         without PIPELINING: DATA (none with BDAT)
    end-of-data  the content, and the reply after the dot or the last BDAT
                 chunk (for LMTP, every recipient's reply)
    quit         QUIT, when the session ends with the message

Nothing here imports Locust: a report is built from files alone.
"""

from __future__ import annotations

__all__ = ["PHASES", "PHASE_SUFFIX", "in_phase_order", "is_phase_type", "phase_position"]

PHASES = (
    "connect", "tls", "banner", "helo", "starttls", "auth",
    "rset", "envelope", "mail", "rcpt", "data", "end-of-data", "quit",
)

PHASE_SUFFIX = "-phase"
"""Request types ending with it (``SMTP-phase``, a user's ``phase_stats`` rows) carry phase times, not messages."""

_POSITIONS = {phase: position for position, phase in enumerate(PHASES)}


def phase_position(name: str) -> int:
    """Where `name` stands in protocol order; a name that is not a phase comes after every phase."""
    return _POSITIONS.get(name.lower(), len(PHASES))


def in_phase_order(names) -> list[str]:
    """`names` in protocol order; names that are not phases follow, by name."""
    return sorted(names, key=lambda name: (phase_position(name), name))


def is_phase_type(request_type: str) -> bool:
    """Whether a request type's rows are phase times (``SMTP-phase``), not messages."""
    return request_type.endswith(PHASE_SUFFIX)
