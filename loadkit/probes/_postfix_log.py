"""Postfix's log after a run: status counts and the ``delays=a/b/c/d`` of every delivery.

A delivery line reads::

    postfix/smtp[18268]: BE59A214223: to=<user@loadkit.test>, relay=..., delay=0.04,
        delays=0.02/0.02/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)

``delays`` splits ``delay`` into: before the queue manager (a), in the queue
(b), connection setup including DNS, HELO and TLS (c), and transmission (d),
in seconds. Each goes into an HdrHistogram of µs (resolution: Postfix's own,
10 ms above 0.1 s). The sender comes from the queue manager's ``from=<...>``
line of the same queue id, so counts can be told apart by sender (bounces
have the empty sender ``<>``).

Reading starts at a byte offset (the log's size when the run started), so a
log shared by several runs counts only this one.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from loadkit import results
from loadkit.results import POSTFIX_LOG_FILE  # noqa: F401 - re-exported by loadkit.probes

DELAY_PARTS = ("before_queue", "in_queue", "connection", "transmission")

_SENDER = re.compile(r"postfix/[\w/-]+\[\d+\]: (\w+): from=<([^>]*)>")
_DELIVERY = re.compile(
    r"postfix/[\w/-]+\[\d+\]: (\w+): to=<([^>]*)>.*?, delay=([\d.]+), delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+),"
    r" dsn=[\d.]+, status=(\w+)"
)


def postfix_log_summary(path: str | Path, offset: int = 0) -> dict:
    """Status counts (all, and per sender) and delay histograms of the log from byte `offset` on."""
    from loadkit.hdr import encode, new_histogram, percentile_key, percentiles_ms, record_ms, summary_ms

    senders: dict[str, str] = {}
    status: dict[str, int] = {}
    by_sender: dict[str, dict[str, int]] = {}
    delays: dict[str, list[float]] = {name: [] for name in ("total", *DELAY_PARTS)}
    with open(path, "rb") as stream:
        stream.seek(offset)
        for raw in stream:
            line = raw.decode("utf-8", "replace")
            match = _DELIVERY.search(line)
            if match is not None:
                queue_id, word = match.group(1), match.group(8)
                status[word] = status.get(word, 0) + 1
                counts = by_sender.setdefault(senders.get(queue_id, "?"), {})
                counts[word] = counts.get(word, 0) + 1
                for name, value in zip(("total", *DELAY_PARTS), match.group(3, 4, 5, 6, 7)):
                    delays[name].append(float(value) * 1000.0)
                continue
            match = _SENDER.search(line)
            if match is not None:
                senders[match.group(1)] = match.group(2)
    delays_ms, histograms = {}, {}
    for name, values in delays.items():
        histogram = new_histogram()
        record_ms(histogram, values)
        if histogram.total_count:
            delays_ms[name] = {**summary_ms(histogram),
                               **{percentile_key(p): v for p, v in percentiles_ms(histogram, [50, 90, 99]).items()}}
        histograms[name] = encode(histogram)
    return {
        "log": str(path),
        "offset": offset,
        "deliveries": sum(status.values()),
        "status": dict(sorted(status.items())),
        "by_sender": {sender: dict(sorted(counts.items())) for sender, counts in sorted(by_sender.items())},
        "delays_ms": delays_ms,
        "delay_histograms": histograms,
    }


def wait_for_quiet_log(path: str | Path, quiet: float = 0.5, timeout: float = 5.0, sleep=time.sleep) -> None:
    """Wait until the log has not grown for `quiet` seconds (postlogd writes a little after delivery)."""
    deadline = time.monotonic() + timeout
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_size = os.path.getsize(path)
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        sleep(0.1)


def write_postfix_log(folder: str | Path, summary: dict) -> Path:
    return results.write_postfix_log(Path(folder), summary)
