"""Measures of the server's side read from probes.jsonl rows (`loadkit.results.read_probes`).

Shared by ``--check`` (`loadkit.thresholds`) and ``loadkit capacity``, so a
threshold and a capacity limit named alike measure alike.
"""

from __future__ import annotations

POSTFIX_PROBE = "postfix"


def _queue_points(rows: list[dict]) -> list[tuple[float, float]]:
    return [(float(row["time"]), float(row["total"])) for row in rows
            if row.get("probe") == POSTFIX_PROBE and isinstance(row.get("total"), (int, float))
            and isinstance(row.get("time"), (int, float))]


def queue_growth(rows: list[dict]) -> float | None:
    """Messages/s the Postfix queue grew by: the least-squares slope of its total (None under 2 samples)."""
    points = _queue_points(rows)
    if len(points) < 2:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_q = sum(q for _, q in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (q - mean_q) for t, q in points) / spread if spread else None


def queue_max(rows: list[dict]) -> float | None:
    """The largest Postfix queue total sampled (None when the probe never read one)."""
    points = _queue_points(rows)
    return max(q for _, q in points) if points else None
