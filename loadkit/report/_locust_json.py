"""Read the stats Locust writes with ``--json-file NAME`` (to ``NAME.json``).

One object per request type and name, with Locust's running totals, its
response times rounded into buckets (``{"150": 12, ...}`` in ms) and its
requests and failures per second (``{"1764115943": 950, ...}``). Percentiles
from it are as exact as Locust's rounding; the throughput over time is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loadkit import results as files
from loadkit.errors import LoadkitError
from loadkit.hdr import Distribution
from loadkit.results import ResultsError, looks_like_locust_json

__all__ = ["JsonEntry", "LocustJsonError", "json_timeline", "looks_like_locust_json", "read_locust_json"]


class LocustJsonError(LoadkitError, ValueError):
    """A file that is not Locust's JSON stats."""


@dataclass
class JsonEntry:
    type: str
    name: str
    requests: int
    failures: int
    content_length: int
    distribution: Distribution
    requests_per_second: dict[int, int] = field(default_factory=dict)
    failures_per_second: dict[int, int] = field(default_factory=dict)
    start_time: float | None = None
    last_request: float | None = None


def _per_second(mapping) -> dict[int, int]:
    if not isinstance(mapping, dict):
        return {}
    result = {}
    for key, value in mapping.items():
        try:
            result[int(float(key))] = int(value)
        except (TypeError, ValueError):
            continue
    return result


def read_locust_json(path: str | Path) -> list[JsonEntry]:
    try:
        data = files.read_locust_json(path)
    except ResultsError as error:
        raise LocustJsonError(str(error)) from None
    entries = []
    for item in data:
        times = item.get("response_times") if isinstance(item.get("response_times"), dict) else {}
        values, counts = [], []
        for key, count in times.items():
            try:
                values.append(float(key) * 1000.0)  # ms -> µs
                counts.append(int(count))
            except (TypeError, ValueError):
                continue
        entries.append(
            JsonEntry(
                type=str(item.get("method") or ""),
                name=str(item.get("name")),
                requests=int(item.get("num_requests") or 0),
                failures=int(item.get("num_failures") or 0),
                content_length=int(item.get("total_content_length") or 0),
                distribution=Distribution.from_samples(values, counts),
                requests_per_second=_per_second(item.get("num_reqs_per_sec")),
                failures_per_second=_per_second(item.get("num_fail_per_sec")),
                start_time=_number(item.get("start_time")),
                last_request=_number(item.get("last_request_timestamp")),
            )
        )
    return entries


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def json_timeline(entries: list[JsonEntry]) -> tuple[pd.DataFrame, float | None]:
    """Requests (ok and failed) per second over the run, and the epoch second it starts at."""
    seconds = sorted({s for e in entries for s in e.requests_per_second} | {s for e in entries for s in e.failures_per_second})
    if not seconds:
        return pd.DataFrame(columns=["elapsed", "ok_per_s", "failed_per_s", "users"], dtype=float), None
    origin = seconds[0]
    grid = np.arange(origin, seconds[-1] + 1)
    requests = np.zeros(len(grid))
    failures = np.zeros(len(grid))
    for entry in entries:
        for second, count in entry.requests_per_second.items():
            requests[second - origin] += count
        for second, count in entry.failures_per_second.items():
            failures[second - origin] += count
    # Locust counts a failed request in both maps.
    frame = pd.DataFrame(
        {
            "elapsed": (grid - origin).astype(float),
            "ok_per_s": np.maximum(requests - failures, 0),
            "failed_per_s": failures,
            "users": np.nan,
        }
    )
    return frame, float(origin)
