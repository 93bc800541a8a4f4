"""One series of one interval: a histogram plus counts, and how it travels as JSON.

A series is what metrics.jsonl stores per interval: kind ("request" or
"phase"), type, name, ok, failed, bytes, errors by key, and the histogram of
latencies. Workers send the same JSON to the master, which merges series
with the same key by adding them.
"""

from __future__ import annotations

from loadkit.hdr import decode, encode, merge_into, new_histogram

REQUEST = "request"
PHASE = "phase"


class Series:
    __slots__ = ("kind", "type", "name", "histogram", "ok", "failed", "bytes", "errors")

    def __init__(self, kind: str, type_: str, name: str, histogram=None, ok=0, failed=0, bytes_=0, errors=None):
        self.kind = kind
        self.type = type_
        self.name = name
        self.histogram = new_histogram() if histogram is None else histogram
        self.ok = ok
        self.failed = failed
        self.bytes = bytes_
        self.errors: dict[str, int] = {} if errors is None else errors

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.type, self.name)

    def merge(self, other: "Series") -> None:
        merge_into(self.histogram, other.histogram)
        self.ok += other.ok
        self.failed += other.failed
        self.bytes += other.bytes
        for error, count in other.errors.items():
            self.errors[error] = self.errors.get(error, 0) + count

    def to_json(self) -> dict:
        return {
            "kind": self.kind, "type": self.type, "name": self.name,
            "ok": self.ok, "failed": self.failed, "bytes": self.bytes,
            "errors": self.errors, "histogram": encode(self.histogram),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Series":
        return cls(
            data["kind"], data["type"], data["name"], decode(data["histogram"]),
            int(data.get("ok", 0)), int(data.get("failed", 0)), int(data.get("bytes", 0)), dict(data.get("errors") or {}),
        )
