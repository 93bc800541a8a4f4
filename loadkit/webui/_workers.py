"""Each worker's share of a distributed run: requests, rate and p99, from its reports to the master.

A worker sends its intervals with each report (every ~3 s, `loadkit.metrics._worker`);
the master merges them into the run and forgets where they came from. This
keeps, per worker, what the Mail tab shows of it: its requests, their
accepted times' histogram (for its p99), and the last seconds' counts (for
its current rate). The work is per report, never per request.
"""

from __future__ import annotations

import time

from loadkit.hdr import add_span, decode_span, empty_counts, percentiles_of_counts
from loadkit.metrics._series import REQUEST
from loadkit.metrics._worker import PAYLOAD_KEY

RATE_WINDOW = 10.0  # seconds of a worker's intervals its current rate is measured over
# A worker sends the second it is in with each report (every 3 s) and the rest of it with the next:
# its last seconds are complete only this long after they began.
REPORT_LAG = 4.0


class WorkerShare:
    __slots__ = ("requests", "failed", "counts", "recent")

    def __init__(self):
        self.requests = 0
        self.failed = 0
        self.counts = empty_counts()
        self.recent: dict[float, int] = {}  # interval start -> requests, the last RATE_WINDOW seconds

    def p99_us(self) -> float | None:
        return percentiles_of_counts(self.counts, [99.0])[0]

    def rate(self, now: float) -> float:
        """Requests per second over RATE_WINDOW seconds of its intervals, those it has surely reported whole."""
        until = now - REPORT_LAG
        return sum(count for start, count in self.recent.items() if until - RATE_WINDOW <= start < until) / RATE_WINDOW


class WorkerShares:
    """Listens to `worker_report` on a master (only with a web UI)."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self.shares: dict[str, WorkerShare] = {}

    def clear(self, **_kwargs) -> None:
        self.shares = {}

    def on_worker_report(self, client_id, data, **_kwargs) -> None:
        payload = data.get(PAYLOAD_KEY)
        if not payload:
            return
        share = self.shares.get(client_id)
        if share is None:
            share = self.shares[client_id] = WorkerShare()
        for interval in payload.get("intervals", ()):
            start = float(interval["start"])
            for series in interval.get("series", ()):
                if series.get("kind") != REQUEST:
                    continue
                requests = int(series.get("ok", 0)) + int(series.get("failed", 0))
                share.requests += requests
                share.failed += int(series.get("failed", 0))
                share.recent[start] = share.recent.get(start, 0) + requests
                add_span(share.counts, decode_span(series["histogram"]))
        oldest = self.clock() - RATE_WINDOW - REPORT_LAG - 1.0
        for start in [start for start in share.recent if start < oldest]:
            del share.recent[start]

    def rows(self) -> list[dict]:
        """One dict per worker, by id: requests, share of all, rate, p99 (µs)."""
        total = sum(share.requests for share in self.shares.values())
        now = self.clock()
        return [
            {"worker": worker, "requests": share.requests, "failed": share.failed,
             "share": share.requests / total if total else 0.0, "rate": share.rate(now), "p99_us": share.p99_us()}
            for worker, share in sorted(self.shares.items())
        ]
