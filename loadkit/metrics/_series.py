"""One series of one interval: a histogram plus counts, and how it travels as JSON.

A series is what metrics.jsonl stores per interval: kind ("request" or
"phase"), type, name, ok, failed, bytes, errors by key, and two histograms
of latencies. For requests, ``histogram`` holds the accepted ones and
``failed_histogram`` the failed ones (an OK/KO split, as Gatling does: a
refusal in 0.1 ms must not make the accepted mail look fast); a phase's
``histogram`` holds every time measured for it. Workers send the same JSON
to the master, which merges series with the same key by adding them.
"""

from __future__ import annotations

from loadkit.hdr import decode, encode, merge_into, new_histogram

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

    def to_json(self) -> dict:
        line = {
            "kind": self.kind, "type": self.type, "name": self.name,
            "ok": self.ok, "failed": self.failed, "bytes": self.bytes,
            "errors": self.errors, "histogram": encode(self.histogram),
        }
        if self.failed_histogram is not None and self.failed_histogram.total_count:
            line["failed_histogram"] = encode(self.failed_histogram)
        return line

    @classmethod
    def from_json(cls, data: dict) -> "Series":
        failed = data.get("failed_histogram")
        return cls(
            data["kind"], data["type"], data["name"], decode(data["histogram"]),
            int(data.get("ok", 0)), int(data.get("failed", 0)), int(data.get("bytes", 0)), dict(data.get("errors") or {}),
            decode(failed) if failed else None,
        )
