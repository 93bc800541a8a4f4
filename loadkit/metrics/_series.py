"""One series of one interval: a histogram plus counts, and how it travels as JSON.

A series is what metrics.jsonl stores per interval: kind ("request" or
"phase"), type, name, ok, failed, bytes, errors by key, and two histograms
of latencies. For requests, ``histogram`` holds the accepted ones and
``failed_histogram`` the failed ones (an OK/KO split, as Gatling does: a
refusal in 0.1 ms must not make the accepted mail look fast); a phase's
``histogram`` holds every time measured for it. Workers send the same JSON
to the master, which merges series with the same key by adding them.

A master merges thousands of series a second (every worker's, every
second): `MergedSeries` adds each one's JSON straight into counts arrays,
with no hdrh object per series, and encodes once, when its interval is
written; its JSON holds the very counts merging `Series` objects gives, at
zlib level `WRITE_LEVEL` (see `loadkit.hdr`, "zlib levels"). Workers send
their series at `WIRE_LEVEL` (`Series.to_json(level)`), which a master
inflates with a copy.
"""

from __future__ import annotations

from loadkit.hdr import (
    HDRH_LEVEL,
    WRITE_LEVEL,
    add_encoded,
    decode,
    empty_counts,
    encode,
    encode_counts,
    merge_into,
    new_histogram,
    percentiles_of_counts,
)

REQUEST = "request"
PHASE = "phase"


class Series:
    __slots__ = ("kind", "type", "name", "histogram", "ok", "failed", "bytes", "errors", "failed_histogram")

    def __init__(self, kind: str, type_: str, name: str, histogram=None, ok=0, failed=0, bytes_=0, errors=None,
                 failed_histogram=None):
        self.kind = kind
        self.type = type_
        self.name = name
        self.histogram = new_histogram() if histogram is None else histogram
        self.ok = ok
        self.failed = failed
        self.bytes = bytes_
        self.errors: dict[str, int] = {} if errors is None else errors
        self.failed_histogram = failed_histogram  # None until a failed request is timed

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.type, self.name)

    def merge(self, other: "Series") -> None:
        merge_into(self.histogram, other.histogram)
        if other.failed_histogram is not None:
            if self.failed_histogram is None:
                self.failed_histogram = new_histogram()
            merge_into(self.failed_histogram, other.failed_histogram)
        self.ok += other.ok
        self.failed += other.failed
        self.bytes += other.bytes
        for error, count in other.errors.items():
            self.errors[error] = self.errors.get(error, 0) + count

    def to_json(self, level: int = HDRH_LEVEL) -> dict:
        """The series as JSON; its histograms compressed at zlib `level` (hdrh's by default)."""
        line = {
            "kind": self.kind, "type": self.type, "name": self.name,
            "ok": self.ok, "failed": self.failed, "bytes": self.bytes,
            "errors": self.errors, "histogram": encode(self.histogram, level),
        }
        if self.failed_histogram is not None and self.failed_histogram.total_count:
            line["failed_histogram"] = encode(self.failed_histogram, level)
        return line

    @classmethod
    def from_json(cls, data: dict) -> "Series":
        failed = data.get("failed_histogram")
        return cls(
            data["kind"], data["type"], data["name"], decode(data["histogram"]),
            int(data.get("ok", 0)), int(data.get("failed", 0)), int(data.get("bytes", 0)), dict(data.get("errors") or {}),
            decode(failed) if failed else None,
        )


# Counts arrays of written intervals, zeroed, for the next ones: a new array is 184 KiB
# of fresh pages, several times the cost of adding a worker's histogram into it.
_spare_counts: list = []
SPARE_COUNTS = 256


def _zero_counts():
    return _spare_counts.pop() if _spare_counts else empty_counts()


class MergedCounts:
    """The counts of many histograms added together (standard layout), and what encoding needs."""

    __slots__ = ("counts", "total", "first", "last")

    def __init__(self):
        self.counts = None  # np.ndarray, allocated with the first value
        self.total = 0
        self.first = -1  # lowest and highest non-zero index (-1: none)
        self.last = -1

    def add_encoded(self, encoded: str) -> None:
        counts = self.counts
        if counts is None:
            counts = self.counts = _zero_counts()
        total, first, last = add_encoded(counts, encoded)
        if total:  # `_grew`, written out: a master runs this for every histogram of every worker
            self.total += total
            if self.first < 0 or first < self.first:
                self.first = first
            if last > self.last:
                self.last = last

    def add_counts(self, counts) -> None:
        """Another standard-layout counts array (a local `Series`' histogram)."""
        nonzero = counts.nonzero()[0]
        if not len(nonzero):
            return
        if self.counts is None:
            self.counts = _zero_counts()
        self.counts += counts
        self._grew(int(counts[nonzero].sum()), int(nonzero[0]), int(nonzero[-1]))

    def add(self, other: "MergedCounts") -> None:
        if not other.total:
            return
        if self.counts is None:
            self.counts = _zero_counts()
        self.counts[other.first : other.last + 1] += other.counts[other.first : other.last + 1]
        self._grew(other.total, other.first, other.last)

    def _grew(self, total: int, first: int, last: int) -> None:
        if not total:
            return
        self.total += total
        self.first = first if self.first < 0 else min(self.first, first)
        self.last = max(self.last, last)

    def encode(self) -> str:
        """What a master writes: compressed at `WRITE_LEVEL`, twice as fast as hdrh's level."""
        return encode_counts(self.counts, self.last if self.total else -1, WRITE_LEVEL)

    def percentiles_ms(self, wanted) -> dict[float, float]:
        """{percentile: ms} by the nearest-rank rule (`loadkit.hdr`); {} when empty."""
        if not self.total:
            return {}
        return {p: value / 1000.0 for p, value in zip(wanted, percentiles_of_counts(self.counts, list(wanted)))}

    def release(self) -> None:
        """Done with these counts (their interval is written and merged): zero them for another."""
        counts, first, last = self.counts, self.first, self.last
        self.counts, self.total, self.first, self.last = None, 0, -1, -1
        if counts is None or len(_spare_counts) >= SPARE_COUNTS:
            return
        if last >= 0:
            counts[first : last + 1] = 0
        _spare_counts.append(counts)


class MergedSeries:
    """A master's sum of series with one key, kept as counts; `to_json` as `Series.to_json` of their merge."""

    __slots__ = ("kind", "type", "name", "histogram", "ok", "failed", "bytes", "errors", "failed_histogram")

    def __init__(self, kind: str, type_: str, name: str):
        self.kind = kind
        self.type = type_
        self.name = name
        self.histogram = MergedCounts()
        self.ok = 0
        self.failed = 0
        self.bytes = 0
        self.errors: dict[str, int] = {}
        self.failed_histogram: MergedCounts | None = None  # None until a part has one

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.type, self.name)

    @classmethod
    def of_series(cls, series: Series) -> "MergedSeries":
        merged = cls(series.kind, series.type, series.name)
        merged.merge(series)
        return merged

    def add_json(self, data: dict) -> None:
        """Add one series as `Series.to_json` wrote it (HistogramError if a histogram is not one)."""
        self.histogram.add_encoded(data["histogram"])
        failed = data.get("failed_histogram")
        if failed:
            if self.failed_histogram is None:
                self.failed_histogram = MergedCounts()
            self.failed_histogram.add_encoded(failed)
        get = data.get  # `_add_counts`, written out: once per series of every worker report
        self.ok += int(get("ok", 0))
        self.failed += int(get("failed", 0))
        self.bytes += int(get("bytes", 0))
        errors = get("errors")
        if errors:
            self._add_errors(errors)

    def merge(self, other) -> None:
        """Add a `Series` or another `MergedSeries`."""
        if isinstance(other, MergedSeries):
            self.histogram.add(other.histogram)
            if other.failed_histogram is not None:
                if self.failed_histogram is None:
                    self.failed_histogram = MergedCounts()
                self.failed_histogram.add(other.failed_histogram)
        else:
            from loadkit.hdr import _counts

            self.histogram.add_counts(_counts(other.histogram))
            if other.failed_histogram is not None:
                if self.failed_histogram is None:
                    self.failed_histogram = MergedCounts()
                self.failed_histogram.add_counts(_counts(other.failed_histogram))
        self._add_counts(other.ok, other.failed, other.bytes, other.errors)

    def release(self) -> None:
        """The counts arrays go back for other intervals; this series is not read again."""
        self.histogram.release()
        if self.failed_histogram is not None:
            self.failed_histogram.release()

    def _add_counts(self, ok: int, failed: int, bytes_: int, errors) -> None:
        self.ok += ok
        self.failed += failed
        self.bytes += bytes_
        if errors:
            self._add_errors(errors)

    def _add_errors(self, errors: dict) -> None:
        mine = self.errors
        for error, count in errors.items():
            mine[error] = mine.get(error, 0) + count

    def to_json(self) -> dict:
        line = {
            "kind": self.kind, "type": self.type, "name": self.name,
            "ok": self.ok, "failed": self.failed, "bytes": self.bytes,
            "errors": self.errors, "histogram": self.histogram.encode(),
        }
        if self.failed_histogram is not None and self.failed_histogram.total:
            line["failed_histogram"] = self.failed_histogram.encode()
        return line
