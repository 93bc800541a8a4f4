"""Open-model counts per interval: offered, sent and dropped arrivals as series of kind ``open``.

`OpenModelRecorder` is the request recorder of a process that may run an
open-model test: besides what `RequestRecorder` records, each fold adds the
arrivals its process's schedule offered, started and dropped since the last
one, as count-only series (kind ``open``, type ``open``, name ``offered`` /
``sent`` / ``dropped``, the count in ``ok``). Intervals are whole seconds,
so metrics.jsonl holds them per second, summed across workers on the master
like every series. Nothing is added on the request listener's hot path.
"""

from __future__ import annotations

from loadkit.metrics._recorder import RequestRecorder
from loadkit.metrics._series import Series

OPEN = "open"
COUNTS = ("offered", "sent", "dropped")

__all__ = ["COUNTS", "OPEN", "OpenModelRecorder", "open_totals"]


class OpenModelRecorder(RequestRecorder):
    def __init__(self):
        super().__init__()
        self._seen: dict[int, tuple[int, int, int]] = {}  # id(counter) -> counts already folded

    def _deltas(self) -> tuple[int, int, int]:
        from loadkit.open_model_locust import any_pool

        pool = any_pool()
        counts = pool.counts if pool is not None else None
        if counts is None:
            return (0, 0, 0)
        now = (counts.offered, counts.started, counts.dropped)
        before = self._seen.get(id(counts), (0, 0, 0))
        self._seen = {id(counts): now}
        return tuple(a - b for a, b in zip(now, before))

    def take(self):
        return super().take(), self._deltas()

    def fold(self, taken) -> list[Series]:
        requests, deltas = taken
        series = RequestRecorder.fold(requests)
        if any(deltas):
            series += [Series(OPEN, OPEN, name, ok=count) for name, count in zip(COUNTS, deltas)]
        return series

    def pending(self) -> bool:
        from loadkit.open_model_locust import any_pool

        pool = any_pool()
        counts = pool.counts if pool is not None else None
        if counts is not None and (counts.offered, counts.started, counts.dropped) != self._seen.get(id(counts)):
            return True
        return super().pending()


def open_totals(by_key: dict) -> dict[str, int]:
    """offered/sent/dropped over a run, from `Totals.by_key` ((kind, type, name) -> [ok, failed, bytes])."""
    return {name: by_key.get((OPEN, OPEN, name), (0,))[0] for name in COUNTS}
