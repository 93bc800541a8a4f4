"""Apache's mod_status ``?auto`` page, once a second.

``ReqPerSec`` and ``BytesPerSec`` on that page are averages since the server
started; the rates here are the differences of ``Total Accesses`` and
``Total kBytes`` between two samples, so they show the load of that second.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from loadkit.probes._base import ProbeError

TIMEOUT = 2.0  # seconds; a slower answer is a failed sample, not a stalled probe
# https://httpd.apache.org/docs/2.4/mod/mod_status.html: one character per worker slot
SCOREBOARD = {
    "_": "waiting", "S": "starting", "R": "reading", "W": "sending", "K": "keepalive", "D": "dns",
    "C": "closing", "L": "logging", "G": "finishing", "I": "idle_cleanup", ".": "open_slot",
}


class ApacheStatusProbe:
    """Busy and idle workers, requests/s, bytes/s and scoreboard counts from `url`."""

    name = "apache"

    def __init__(self, url: str):
        if "?auto" not in url:
            url += ("&" if "?" in url else "?") + "auto"
        self.url = url
        self._last: tuple[float, int, int] | None = None  # (time, accesses, kbytes)

    def sample(self) -> dict:
        from loadkit.instances import parse_server_status

        # The page counts when it is asked for, as the row's time says; reading the answer can
        # wait behind a busy event loop, and rates timed by it drift from the row's times.
        now = time.monotonic()
        try:
            with urllib.request.urlopen(self.url, timeout=TIMEOUT) as response:
                text = response.read().decode("latin-1")
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise ProbeError(f"{self.url}: {getattr(error, 'reason', None) or error}") from None
        status = parse_server_status(text)
        if "BusyWorkers" not in status:
            raise ProbeError(f"{self.url}: not a mod_status ?auto page")
        row = {"busy_workers": status.get("BusyWorkers"), "idle_workers": status.get("IdleWorkers")}
        accesses, kbytes = status.get("Total Accesses"), status.get("Total kBytes")
        if isinstance(accesses, int) and isinstance(kbytes, (int, float)):
            if self._last is not None and now > self._last[0]:
                seconds = now - self._last[0]
                row["requests_per_s"] = round((accesses - self._last[1]) / seconds, 3)
                row["bytes_per_s"] = round((kbytes - self._last[2]) * 1024 / seconds, 1)
            self._last = (now, accesses, kbytes)
            row["total_accesses"] = accesses
        scoreboard = status.get("Scoreboard")
        if isinstance(scoreboard, str):
            for char, name in SCOREBOARD.items():
                row[f"scoreboard_{name}"] = scoreboard.count(char)
        return row
