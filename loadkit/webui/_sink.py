"""The sink's counters, read over its control port (``loadkit sink --control``), for the Mail tab.

``--sink-control HOST:PORT`` (or http://HOST:PORT) names it. The counters
are read at most once a second whatever the number of browsers polling, with
a short timeout: a sink that does not answer shows as such, never stalls the UI.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from loadkit.errors import LoadkitError

READ_TIMEOUT = 1.0  # seconds
FRESH_FOR = 1.0  # seconds a reading is reused


class SinkControlError(LoadkitError):
    """A --sink-control address that cannot be used."""


def stats_url(address: str) -> str:
    """http://HOST:PORT/stats of a control port given as HOST:PORT or an http:// URL."""
    text = address.strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        if ":" not in text:
            raise SinkControlError(f"--sink-control {address!r}: expected HOST:PORT, e.g. 127.0.0.1:8025")
        text = "http://" + text
    return text.removesuffix("/stats") + "/stats"


class SinkCounters:
    """The last reading of one sink's /stats (None until one succeeds) and the last error."""

    def __init__(self, opener=urllib.request.urlopen, clock=time.monotonic):
        self.opener = opener
        self.clock = clock
        self.url: str | None = None
        self.stats: dict | None = None
        self.error: str | None = None
        self._read_at = float("-inf")

    def point_at(self, address: str | None) -> None:
        url = stats_url(address) if address else None
        if url != self.url:
            self.url, self.stats, self.error, self._read_at = url, None, None, float("-inf")

    def read(self, force: bool = False) -> dict | None:
        if self.url is None:
            return None
        now = self.clock()
        if not force and now - self._read_at < FRESH_FOR:
            return self.stats
        self._read_at = now
        try:
            with self.opener(self.url, timeout=READ_TIMEOUT) as response:
                self.stats = json.loads(response.read())
                self.error = None
        except (OSError, ValueError, urllib.error.URLError) as error:
            self.error = f"sink control {self.url}: {getattr(error, 'reason', None) or error}"
        return self.stats
