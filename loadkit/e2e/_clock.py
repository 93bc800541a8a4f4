"""The offset between this host's clock and a loadkit sink's, measured over SMTP.

End-to-end delays are the sink's arrival time minus the send time stamped in
the trace header by the sender: two clocks. When they are on different hosts
their difference goes straight into every delay, so each sender measures it
NTP-style and the delays are corrected by it.

A loadkit sink answers ``NOOP clock`` with ``250 2.0.0 Ok clock=<epoch
seconds>`` (any other NOOP gets the plain reply). For each of a few samples:
t0 just before the command is written, t1 just after its reply is read; the
sink read its clock somewhere in between, so

    offset = sink_clock - (t0 + t1) / 2      (sink minus here)

is off by at most half the round trip. The sample with the smallest round
trip is kept. A send time ``sent_at`` of this host is ``sent_at + offset`` on
the sink's clock.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

from loadkit.errors import LoadkitError

METHOD = "NTP-style over SMTP: NOOP clock to the sink, offset from the sample with the smallest round trip"
DEFAULT_SAMPLES = 8
DEFAULT_TIMEOUT = 5.0
_CLOCK = re.compile(rb"^250[ -].*\bclock=(\d+(?:\.\d+)?)", re.MULTILINE)


class ClockError(LoadkitError):
    """The sink could not be reached or did not say its clock (not a loadkit sink)."""


@dataclass(frozen=True)
class ClockOffset:
    offset_ms: float  # the sink's clock minus this host's
    round_trip_ms: float  # of the sample kept: the offset is exact within half of it
    samples: int

    def to_json(self) -> dict:
        return {"offset_ms": round(self.offset_ms, 3), "round_trip_ms": round(self.round_trip_ms, 3),
                "samples": self.samples}


def measure_sink_clock_offset(host: str, port: int, samples: int = DEFAULT_SAMPLES,
                              timeout: float = DEFAULT_TIMEOUT, clock=time.time) -> ClockOffset:
    """Connect to the sink at `host`:`port`, send ``NOOP clock`` `samples` times, QUIT."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            reader = connection.makefile("rb")
            _read_reply(reader)  # the banner
            best = None
            for _ in range(samples):
                sent = clock()
                connection.sendall(b"NOOP clock\r\n")
                reply = _read_reply(reader)
                received = clock()
                match = _CLOCK.search(reply)
                if match is None:
                    raise ClockError(f"the sink at {host}:{port} did not say its clock: {reply[:80]!r}")
                round_trip = received - sent
                offset = float(match.group(1)) - (sent + received) / 2
                if best is None or round_trip < best[0]:
                    best = (round_trip, offset)
            connection.sendall(b"QUIT\r\n")
    except OSError as error:
        raise ClockError(f"cannot ask the sink at {host}:{port} for its clock: {error}") from None
    return ClockOffset(offset_ms=best[1] * 1000.0, round_trip_ms=best[0] * 1000.0, samples=samples)


def _read_reply(reader) -> bytes:
    """One SMTP reply, multi-line ones joined."""
    lines = []
    while True:
        line = reader.readline(4096)
        if not line:
            raise ClockError("the sink closed the connection")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)
