"""The open model in a report: offered, sent and dropped per second, and both latencies side by side.

Read from the results folder alone (metrics.jsonl through `loadkit.results`):
series of kind ``open`` count arrivals per second; the request histograms
hold the corrected latency, the ``service`` and ``lag`` phases the others.
A run without ``--rate`` has none of them, and gets neither the chart nor
the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadkit.results import Notes, read_intervals

COUNTS = ("offered", "sent", "dropped")


@dataclass
class OpenModelFacts:
    """Per-second counts (seconds since the first interval) and the run's totals and p99s (ms)."""

    seconds: list[float]
    per_second: dict[str, list[int]]
    totals: dict[str, int]
    corrected_p99: float | None
    service_p99: float | None

    @property
    def rate_reached(self) -> bool:
        from loadkit.open_model import rate_reached

        return rate_reached(self.totals["offered"], self.totals["sent"])


def read_open_model(folder: Path) -> OpenModelFacts | None:
    """The open-model facts of a results folder; None for a closed-model run."""
    from loadkit.hdr import decode, merge_into, new_histogram, percentiles_ms

    notes = Notes()
    seconds, per_second = [], {name: [] for name in COUNTS}
    corrected, service = new_histogram(), new_histogram()
    origin = None
    for _number, interval in read_intervals(folder, notes, decode=decode):
        start = float(interval["start"])
        origin = start if origin is None else origin
        counts = dict.fromkeys(COUNTS, 0)
        for series in interval.get("series", ()):
            kind, name = series.get("kind"), series.get("name")
            if kind == "open" and name in counts:
                counts[name] += series.get("ok", 0)
            elif series.get("histogram") and kind == "request":
                merge_into(corrected, series["histogram"])
            elif series.get("histogram") and kind == "phase" and name == "service":
                merge_into(service, series["histogram"])
        seconds.append(start - origin)
        for name in COUNTS:
            per_second[name].append(counts[name])
    totals = {name: sum(values) for name, values in per_second.items()}
    if not totals["offered"]:
        return None
    def p99(histogram):
        return percentiles_ms(histogram, [99])[99] if histogram.total_count else None
    return OpenModelFacts(seconds, per_second, totals, p99(corrected), p99(service))


def open_model_line(facts: OpenModelFacts) -> str:
    """One line for the report: offered vs sent, dropped, and which p99 is which."""
    totals = facts.totals
    share = totals["sent"] / totals["offered"]
    latencies = ""
    if facts.corrected_p99 is not None and facts.service_p99 is not None:
        latencies = (f" p99 {facts.corrected_p99:.1f} ms corrected (from the intended time), "
                     f"{facts.service_p99:.1f} ms service (from the send).")
    reached = "rate reached" if facts.rate_reached else "rate NOT reached"
    return (f"Open model: {totals['offered']:,} offered, {totals['sent']:,} sent ({share:.1%}, {reached}), "
            f"{totals['dropped']:,} dropped.{latencies}")


def open_model_chart(facts: OpenModelFacts) -> bytes | None:
    """Offered, sent and dropped arrivals per second."""
    from matplotlib.figure import Figure

    from loadkit.report._charts import _axes, _legend, _render

    figure = Figure(figsize=(10, 3.2), layout="constrained")
    axes = _axes(figure, "Offered and achieved rate", "seconds", "arrivals/s")
    styles = {"offered": {"color": "#888888", "linestyle": "--"}, "sent": {"color": "#1f77b4"},
              "dropped": {"color": "#d62728"}}
    for name in COUNTS:
        axes.step(facts.seconds, facts.per_second[name], where="post", label=name, **styles[name])
    _legend(axes)
    return _render(figure)
