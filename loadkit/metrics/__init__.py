"""Numbers of a run: HdrHistograms per interval, worker->master merge, the results folder.

    _recorder    the request listener (hot path): raw values into buffers, folded at each tick
    _series      one series of one interval, and its JSON form
    _intervals   intervals merged by start and written to metrics.jsonl once settled
    _integrity   events.jsonl: workers joining, missing, lost; CPU too high
    _worker      a Locust worker's side: intervals sent with each report to the master
    _run         one run into one results folder (local runner or master)
    _csv         Locust's own CSV in the folder, complete at the end
    plugin       --results and --check on the locust command line

Histograms themselves (layout, recording, codec, merge, percentiles) are
``loadkit.hdr``'s. Names are loaded on first use: numpy is not imported by
merely importing loadkit's users (``loadkit source`` records no histogram).
"""

from __future__ import annotations

import importlib

_WHERE = {
    "RequestRecorder": "_recorder", "Series": "_series", "IntervalStore": "_intervals",
    "IntegrityLog": "_integrity", "WorkerReporter": "_worker", "RunRecorder": "_run", "LocustCsv": "_csv",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
