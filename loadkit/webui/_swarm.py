"""What the start form is checked for before a swarm starts: the host, and the thresholds.

Locust's ``/swarm`` answers ``{"success": false, "message": ...}`` to a form
it cannot use, and the UI shows that message; loadkit answers the same way,
before Locust sees the form, for a host its mail users cannot use (a scheme
they do not speak, a name that does not resolve) and for a ``check`` field
that is not a threshold. Nothing has started then: no users, no results folder.
"""

from __future__ import annotations

import re
import socket

import gevent

from loadkit import thresholds
from loadkit.urls import TargetError, parse_url

RESOLVE_TIMEOUT = 5.0  # seconds a host name gets to resolve
CHECK_SEPARATORS = re.compile(r"[;,\n]+")


def mail_user_classes(user_classes) -> list:
    """The user classes that speak a mail protocol (loadkit's SmtpUser and subclasses carry `protocol`)."""
    return [cls for cls in user_classes if isinstance(getattr(cls, "protocol", None), str)
            and hasattr(cls, "messages_per_connection")]


def host_problem(host: str, user_classes, resolve=socket.getaddrinfo) -> str | None:
    """Why `host` cannot be used by these mail users, in one line; None when it can (or none sends mail)."""
    mail_users = mail_user_classes(user_classes)
    if not mail_users:
        return None
    try:
        target = parse_url(host)
    except TargetError as error:
        return str(error)
    for user_class in mail_users:
        protocol = user_class.protocol
        if target.protocol != protocol:
            return (f"{user_class.__name__} speaks {protocol.upper()} but the host is {target}: "
                    f"use {protocol}://host:port")
    if target.is_unix:
        return None
    try:
        with gevent.Timeout(RESOLVE_TIMEOUT):
            resolve(target.host, target.port, type=socket.SOCK_STREAM)
    except gevent.Timeout:
        return f"host {target.host!r} did not resolve within {RESOLVE_TIMEOUT:.0f} s"
    except (socket.gaierror, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        return f"unknown host {target.host!r}: {reason}"
    return None


def parse_checks(values) -> list:
    """The form's ``check`` value(s): thresholds separated by commas, semicolons or new lines.

    Raises `loadkit.thresholds.ThresholdError` with one line for one that is not a threshold."""
    expressions = []
    for value in values:
        expressions += [part.strip() for part in CHECK_SEPARATORS.split(value or "") if part.strip()]
    return thresholds.parse_all(expressions)
