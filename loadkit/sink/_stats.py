"""What the sink has received and answered: exact counters, cheap to bump on the hot path.

The sink's sessions add to these plain attributes directly (no locks: they
run as greenlets in one thread). Readers in other threads see a
consistent-enough view for progress lines; `as_dict` is the one to write to
files.

Reply codes are counted per reply *object*: the sessions answer with a few
constant byte strings, so the hot path does one dict increment per reply and
`reply_codes` turns the keys into codes when asked. Replies that differ per
session (a CRAM-MD5 challenge) are folded into codes at the end of a session
once there are many keys, so the dict stays small.
"""

from __future__ import annotations

import os
import time

from loadkit.hdr import encode, new_histogram, percentile_key, percentiles_ms, record_us, summary_ms

FOLD_REPLIES_ABOVE = 256  # distinct reply objects kept before folding them into codes
SEEN_BITMAP_LIMIT = 1 << 27  # sequence numbers below this are remembered in a bitmap (16 MiB per source at most)


class SinkStats:
    """Counters of one sink run.

    sessions    connections accepted
    messages    transactions completed with a positive end-of-data reply
                (LMTP: a message delivered to N recipients counts once)
    recipients  accepted recipients of completed messages
    bytes       message bytes as delivered: dot-stuffing removed, the
                terminating ".<CR><LF>" excluded (BDAT: the chunks' bytes)
    timeouts    sessions closed because the client stayed silent too long
    replies     {reply object: times sent}; `reply_codes` gives {code: count}
                (an LMTP end of data with 3 recipients is 3 replies)
    faults      {(kind, command): count} of faults injected on purpose
                (kinds: reject, disconnect, shutdown, delay, drip, greylist)
    tls_sessions, tls_failures   TLS handshakes completed / failed
    auth_ok, auth_failed         AUTH exchanges that logged in / were refused
    stored, store_skipped, store_failed   messages written by --store, accepted
                                 but not written (past --store-max), not written (error)
    over_buffer, buffers_full    messages refused because they outgrew one session's
                                 buffer (552) / all sessions' (451) while kept for --store
    trace       a `TraceStats`, or None when traces are not read
    rules       the `RecipientRules` whose per-rule counts are written, or None
    changes     [{"time": epoch seconds, "what": text}]: faults changed during
                the run (the control port), so a report can mark the moment
    """

    __slots__ = (
        "sessions", "messages", "recipients", "bytes", "timeouts", "replies", "faults",
        "tls_sessions", "tls_failures", "auth_ok", "auth_failed", "stored", "store_skipped", "store_failed",
        "over_buffer", "buffers_full", "trace", "rules", "changes", "started", "stopped", "_codes",
    )

    def __init__(self, trace: bool = False) -> None:
        self.sessions = 0
        self.messages = 0
        self.recipients = 0
        self.bytes = 0
        self.timeouts = 0
        self.replies: dict[bytes, int] = {}
        self.faults: dict[tuple[str, str], int] = {}
        self.tls_sessions = 0
        self.tls_failures = 0
        self.auth_ok = 0
        self.auth_failed = 0
        self.stored = 0
        self.store_skipped = 0
        self.store_failed = 0
        self.over_buffer = 0
        self.buffers_full = 0
        self.trace = TraceStats() if trace else None
        self.rules = None
        self.changes: list[dict] = []
        self.started = time.monotonic()
        self.stopped: float | None = None
        self._codes: dict[str, int] = {}  # replies folded so far

    @property
    def duration(self) -> float:
        """Seconds from the start of serving to its end (or to now, while it runs)."""
        end = self.stopped if self.stopped is not None else time.monotonic()
        return end - self.started

    def count_fault(self, kind: str, command: str) -> None:
        key = (kind, command)
        self.faults[key] = self.faults.get(key, 0) + 1

    def fault_count(self, kind: str | None = None, command: str | None = None) -> int:
        """Faults of that kind and/or command (None: any)."""
        return sum(n for (k, c), n in self.faults.items() if kind in (None, k) and command in (None, c))

    def fold_replies(self) -> None:
        """Move the per-object reply counts into per-code counts (when there are many objects)."""
        if len(self.replies) > FOLD_REPLIES_ABOVE:
            # In place: sessions hold the dict itself. Nothing runs between the copy
            # and the clear (no greenlet switch), so no count is lost.
            replies = dict(self.replies)
            self.replies.clear()
            _add_codes(self._codes, replies)

    def reply_codes(self) -> dict[str, int]:
        """{"250": count, "354": count, ...}: every reply sent, by code."""
        codes = dict(self._codes)
        _add_codes(codes, dict(self.replies))  # dict(): a stable copy while sessions run
        return dict(sorted(codes.items()))

    def as_dict(self) -> dict:
        faults: dict[str, dict[str, int]] = {}
        for (kind, command), count in sorted(dict(self.faults).items()):
            faults.setdefault(kind, {})[command] = count
        return {
            "sessions": self.sessions,
            "messages": self.messages,
            "recipients": self.recipients,
            "bytes": self.bytes,
            "timeouts": self.timeouts,
            "duration": round(self.duration, 6),
            "replies": self.reply_codes(),
            "faults": faults,
            "tls": {"sessions": self.tls_sessions, "failures": self.tls_failures},
            "auth": {"ok": self.auth_ok, "failed": self.auth_failed},
            "store": {
                "stored": self.stored, "skipped": self.store_skipped, "failed": self.store_failed,
                "over_buffer": self.over_buffer, "buffers_full": self.buffers_full,
            },
            "trace": self.trace.as_dict() if self.trace is not None else None,
            "rules": self.rules.as_dict() if self.rules is not None else None,
            "changes": list(self.changes),
        }

    def summary(self) -> str:
        """One line for people, as the running counters show it."""
        line = (
            f"sessions {self.sessions} messages {self.messages} "
            f"recipients {self.recipients} bytes {self.bytes}"
        )
        if self.faults:
            line += f" faults {sum(self.faults.values())}"
        return line

    def __repr__(self) -> str:
        return f"<SinkStats {self.summary()}>"


def _add_codes(codes: dict[str, int], replies: dict[bytes, int]) -> None:
    for reply, count in replies.items():
        for line in reply.split(b"\r\n"):
            if len(line) >= 3 and line[3:4] in (b" ", b"") and line[:3].isdigit():
                code = line[:3].decode("ascii")
                codes[code] = codes.get(code, 0) + count


class TraceStats:
    """Messages carrying ``X-Loadkit-Trace``: delivery delay and duplicates.

    The delay is arrival (the sink's clock at the end of data) minus the
    trace's ``t=`` (the sender's clock when it built the message), kept in an
    HdrHistogram of `loadkit.hdr`'s layout, as a results folder's, recorded
    one value at a time (about 1 µs: no numpy to load at start, no batch to
    fold in the middle of a run). A delay below zero means the two clocks
    disagree: it is counted in `early` and recorded as the lowest value.

    Duplicates: each (run, source) pair gets a bitmap of the sequence
    numbers seen, one bit each (a million messages of one source: 125 KB);
    sequence numbers from 2**27 on go to a set instead (about 100 bytes each).
    A message seen three times counts as two duplicates.

    `log`, when set to a file descriptor (``loadkit sink --trace-log``),
    gets one line per traced message as it arrives, written at once so a
    reader sees every message the sink has answered:
    ``RUN SOURCE SEQUENCE SENT_AT ARRIVAL`` (epoch seconds), and with
    ``--dkim-verify`` the message's outcome after it: ``dkim=pass:DOMAIN``.
    """

    def __init__(self) -> None:
        self.messages = 0
        self.duplicates = 0
        self.early = 0
        self.histogram = new_histogram()
        self._seen: dict[tuple[str, str], bytearray] = {}
        self._seen_far: set[tuple[str, str, int]] = set()
        self.log: int | None = None

    def record(self, trace, arrival: float, dkim: str | None = None) -> None:
        """One traced message (a `loadkit.messages.Trace`) that arrived at `arrival` (epoch seconds)."""
        self.messages += 1
        micros = int((arrival - trace.sent_at) * 1e6 + 0.5)
        if micros < 0:
            self.early += 1
        record_us(self.histogram, micros)
        if self._seen_before(trace.run_id, trace.source, trace.sequence):
            self.duplicates += 1
        if self.log is not None:
            line = f"{trace.run_id} {trace.source} {trace.sequence} {trace.sent_at:.6f} {arrival:.6f}"
            line += f" dkim={dkim}\n" if dkim is not None else "\n"
            os.write(self.log, line.encode("ascii"))  # one write per line: O_APPEND keeps lines whole

    def _seen_before(self, run_id: str, source: str, sequence: int) -> bool:
        if sequence >= SEEN_BITMAP_LIMIT:
            key = (run_id, source, sequence)
            if key in self._seen_far:
                return True
            self._seen_far.add(key)
            return False
        bits = self._seen.get((run_id, source))
        if bits is None:
            bits = self._seen[(run_id, source)] = bytearray(1024)
        index = sequence >> 3
        if index >= len(bits):
            bits.extend(bytes(max(index + 1, 2 * len(bits)) - len(bits)))
        mask = 1 << (sequence & 7)
        if bits[index] & mask:
            return True
        bits[index] |= mask
        return False

    def as_dict(self) -> dict:
        histogram = self.histogram
        delay = {}
        if histogram.total_count:
            summary = summary_ms(histogram)
            delay = {"min": summary["min"], "mean": round(summary["mean"], 3), "max": summary["max"]}
            for percentile, value in percentiles_ms(histogram, (50, 90, 99, 99.9)).items():
                delay[percentile_key(percentile)] = value
        return {
            "messages": self.messages,
            "duplicates": self.duplicates,
            "early": self.early,
            "delay_ms": delay,
            "delay_histogram": encode(histogram),  # hdrh's V2 text, as in metrics.jsonl
        }
