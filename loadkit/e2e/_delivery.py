"""End-to-end delivery: what the target accepted against what reached the sink.

Users send through a relay (Postfix) that delivers to a ``loadkit sink``.
Each message carries ``X-Loadkit-Trace: run=..; src=..; seq=..; t=..``:

- the users remember the trace id (run, source, sequence) of every message
  the target accepted (`AcceptedMessages`), one bit per sequence number;
- the sink appends one line per traced message it answers to its trace log
  (``loadkit sink --trace-log``; an instance's sink writes ``traces.log`` in
  its folder): ``RUN SOURCE SEQUENCE SENT_AT ARRIVAL``;
- after the test, the relay's queue is drained (``postqueue -j`` until it is
  empty, bounded by a timeout), the trace log is read, and `e2e.json` goes
  into the results folder:

      accepted     messages the target accepted (a positive end-of-data reply)
      delivered    distinct accepted messages that reached the sink
      lost         accepted, never delivered (exact: sets of trace ids)
      duplicated   arrivals beyond the first of a message
      unexpected   messages of this run that arrived without the users
                   having seen them accepted (a reply lost on the way back)
      latency      first arrival minus the trace's send time: an encoded
                   HdrHistogram of µs plus its summary in ms
      dkim         when the sink verifies DKIM (``--dkim-verify``): of the
                   delivered messages, {"pass": {domain: n}, "fail": {domain:
                   n}, "none": n}

The delay compares the sender's clock with the sink's. On one host they are
the same clock (``clock_offset_ms: 0``, method "same host"). In a distributed
run each worker sends the trace ids it saw accepted to the master with its
reports (`AcceptedMessages.take_new` / `merge`: ranges of sequence numbers,
only what is new since the last report), and measures the offset between its
clock and the sink's (`loadkit.e2e._clock`); the master corrects each source's
delays by its worker's offset (``clock_offsets_ms: {source: offset}``).
"""

from __future__ import annotations

import time
from pathlib import Path

from loadkit.messages import parse_trace
from loadkit.results import instance_sink
from loadkit.results import write_e2e as write_e2e_json

DRAIN_INTERVAL = 0.2  # seconds between queue reads while draining
LOST_EXAMPLES = 20  # trace ids of lost messages kept in e2e.json, to look them up in logs


class SequenceSet:
    """Whole numbers from 0 up, one bit each: a million sequence numbers in 125 KB."""

    __slots__ = ("_bits", "count")

    def __init__(self) -> None:
        self._bits = bytearray(1024)
        self.count = 0

    def add(self, number: int) -> bool:
        """Add `number`; False when it was there already."""
        index = number >> 3
        if index >= len(self._bits):
            self._bits.extend(bytes(max(index + 1, 2 * len(self._bits)) - len(self._bits)))
        mask = 1 << (number & 7)
        if self._bits[index] & mask:
            return False
        self._bits[index] |= mask
        self.count += 1
        return True

    def __contains__(self, number: int) -> bool:
        index = number >> 3
        return index < len(self._bits) and bool(self._bits[index] & (1 << (number & 7)))

    def __iter__(self):
        for index, byte in enumerate(self._bits):
            if byte:
                for bit in range(8):
                    if byte & (1 << bit):
                        yield (index << 3) | bit

    def __len__(self) -> int:
        return self.count


class AcceptedMessages:
    """Trace ids of the messages a target accepted, as {(run, source): SequenceSet}."""

    def __init__(self, journal: bool = False) -> None:
        self.sequences: dict[tuple[str, str], SequenceSet] = {}
        self.untraced = 0  # accepted messages without a readable trace header
        # On a worker: what was added since the last `take_new`, to send to the master.
        self._new: dict[tuple[str, str], list[int]] | None = {} if journal else None
        self._new_untraced = 0

    def clear(self) -> None:
        self.sequences.clear()
        self.untraced = 0
        if self._new is not None:
            self._new = {}
        self._new_untraced = 0

    def add(self, message: bytes) -> None:
        trace = parse_trace(message)
        if trace is None:
            self.untraced += 1
            self._new_untraced += 1
            return
        self.add_id(trace.run_id, trace.source, trace.sequence)

    def add_id(self, run_id: str, source: str, sequence: int) -> None:
        key = (run_id, source)
        numbers = self.sequences.get(key)
        if numbers is None:
            numbers = self.sequences[key] = SequenceSet()
        if numbers.add(sequence) and self._new is not None:
            self._new.setdefault(key, []).append(sequence)

    def take_new(self) -> dict | None:
        """What was added since the last call, JSON-ready ranges for `merge`; None when nothing."""
        if not self._new and not self._new_untraced:
            return None
        new = {
            "accepted": [[run_id, source, _ranges(sorted(numbers))] for (run_id, source), numbers in self._new.items()],
            "untraced": self._new_untraced,
        }
        self._new, self._new_untraced = {}, 0
        return new

    def merge(self, new: dict) -> list[str]:
        """Add what another process's `take_new` returned; the sources it names."""
        self.untraced += int(new.get("untraced", 0))
        sources = []
        for run_id, source, ranges in new.get("accepted", ()):
            sources.append(source)
            for first, last in ranges:
                for sequence in range(first, last + 1):
                    self.add_id(run_id, source, sequence)
        return sources

    @property
    def count(self) -> int:
        return sum(len(numbers) for numbers in self.sequences.values())

    @property
    def run_ids(self) -> set[str]:
        return {run_id for run_id, _ in self.sequences}


def _ranges(numbers: list[int]) -> list[list[int]]:
    """Sorted whole numbers as [first, last] runs: a worker's sequences are nearly all consecutive."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return runs


def read_trace_log(path: Path, run_ids: set[str]):
    """(run, source, sequence, sent_at, arrival, dkim) of each line of the runs in `run_ids`.

    dkim: the sink's DKIM outcome (``pass:DOMAIN``, ``fail:DOMAIN``, ``none``), or None when it did not verify.
    """
    with open(path, "rb") as stream:
        for line in stream:
            fields = line.split()
            if len(fields) != 5 and not (len(fields) == 6 and fields[5].startswith(b"dkim=")):
                continue  # a line being written as we read: the drain waited for it already
            run_id = fields[0].decode("ascii", "replace")
            if run_id in run_ids:
                dkim = fields[5][5:].decode("ascii", "replace") if len(fields) == 6 else None
                yield (run_id, fields[1].decode("ascii", "replace"), int(fields[2]), float(fields[3]),
                       float(fields[4]), dkim)


def delivery_summary(accepted: AcceptedMessages, trace_log: Path, clock_offsets_ms: dict[str, float] | None = None) -> dict:
    """Accepted, delivered, lost, duplicated, unexpected and the latency histogram (see the module).

    `clock_offsets_ms`: {source: the sink's clock minus that source's}; a send
    time of that source is moved onto the sink's clock before it is subtracted.
    """
    offsets = {source: offset / 1000.0 for source, offset in (clock_offsets_ms or {}).items()}
    from loadkit.hdr import SUMMARY_PERCENTILES, encode, new_histogram, percentile_key, percentiles_ms, record_ms, summary_ms

    histogram = new_histogram()
    delays_ms = []
    arrived: dict[tuple[str, str], SequenceSet] = {}
    duplicated = unexpected = early = 0
    dkim: dict = {}
    for run_id, source, sequence, sent_at, arrival, outcome in read_trace_log(trace_log, accepted.run_ids):
        key = (run_id, source)
        seen = arrived.get(key)
        if seen is None:
            seen = arrived[key] = SequenceSet()
        if not seen.add(sequence):
            duplicated += 1
            continue
        numbers = accepted.sequences.get(key)
        if numbers is None or sequence not in numbers:
            unexpected += 1
            continue
        delay = arrival - (sent_at + offsets.get(source, 0.0))
        if delay < 0:
            early += 1
            delay = 0.0
        delays_ms.append(delay * 1000.0)
        if outcome is not None:
            _count_dkim(dkim, outcome)
    record_ms(histogram, delays_ms)
    delivered = len(delays_ms)
    lost_examples = []
    for (run_id, source), numbers in sorted(accepted.sequences.items()):
        seen = arrived.get((run_id, source))
        for sequence in numbers:
            if seen is None or sequence not in seen:
                lost_examples.append(f"run={run_id}; src={source}; seq={sequence}")
                if len(lost_examples) >= LOST_EXAMPLES:
                    break
        if len(lost_examples) >= LOST_EXAMPLES:
            break
    latency = {}
    if histogram.total_count:
        latency = summary_ms(histogram)
        for percentile, value in percentiles_ms(histogram, SUMMARY_PERCENTILES).items():
            latency[percentile_key(percentile)] = value
    return {
        "accepted": accepted.count,
        "delivered": delivered,
        "lost": accepted.count - delivered,
        "duplicated": duplicated,
        "unexpected": unexpected,
        "untraced": accepted.untraced,
        "early": early,
        "run_ids": sorted(accepted.run_ids),
        "lost_examples": lost_examples,
        "latency_ms": latency,
        "latency_histogram": encode(histogram),
        **({"dkim": dkim} if dkim else {}),
    }


def _count_dkim(counts: dict, outcome: str) -> None:
    if not counts:
        counts.update({"pass": {}, "fail": {}, "none": 0})
    result, _, domain = outcome.partition(":")
    if result in ("pass", "fail"):
        counts[result][domain] = counts[result].get(domain, 0) + 1
    else:
        counts["none"] += 1


# -- the relay's queue ------------------------------------------------------------------


def postfix_queue_size(state_dir: Path) -> int:
    """Messages in the queues of the Postfix instance in `state_dir` (``postqueue -j``)."""
    from loadkit.instances import InstanceError, Postfix

    postfix = Postfix.from_state(state_dir)
    if postfix is None:
        raise InstanceError(f"no Postfix instance in {state_dir} (start one: loadkit target postfix up)")
    return postfix.queue_size()


def sink_trace_log(postfix_state: Path) -> Path | None:
    """The trace log of the sink a Postfix instance relays to (from its instance.json)."""
    trace_log = instance_sink(Path(postfix_state)).get("trace_log")
    return Path(trace_log) if isinstance(trace_log, str) and trace_log else None


def write_e2e(folder: Path, summary: dict, drain_result: dict | None, trace_log: Path, target: str | None,
              clock: dict | None = None) -> Path:
    """`clock`: how send times were put on the sink's clock; None for one host (offset 0)."""
    record = {
        **summary,
        "target": target,
        "trace_log": str(trace_log),
        "drain": drain_result,
        **(clock if clock is not None else {"clock_offset_ms": 0, "clock_offset_method": "same host"}),
        "written_at": time.time(),
    }
    return write_e2e_json(Path(folder), record)
