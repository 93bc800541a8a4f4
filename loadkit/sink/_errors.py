"""The sink's own error: settings it cannot use, an address it cannot listen on."""

from __future__ import annotations

from loadkit.errors import LoadkitError


class SinkError(LoadkitError):
    """The sink cannot listen or run; the message is one line for people."""
