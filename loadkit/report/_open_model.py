"""The open model in a report: offered, sent and dropped per second, and both latencies side by side.

Read from the results folder alone, in the same pass over metrics.jsonl as
the rest of the report (`loadkit.report._metrics`): series of kind ``open``
count arrivals per second; the request histograms hold the corrected
latency, the ``service`` and ``lag`` phases the others. A run without
``--rate`` has none of them, and gets neither the chart nor the line. A long
run's chart has one point per time bucket (its mean arrivals per second);
the totals and p99s are of every interval.
"""

from __future__ import annotations

from dataclasses import dataclass

COUNTS = ("offered", "sent", "dropped")


@dataclass
class OpenModelFacts:
    """Arrivals per second of each time bucket (its start, in seconds since the first
    interval) and the run's totals and p99s (ms)."""

    seconds: list[float]
    per_second: dict[str, list[float]]
    totals: dict[str, int]
    corrected_p99: float | None
    service_p99: float | None
    bucket_seconds: int = 1

    @property
    def rate_reached(self) -> bool:
        from loadkit.open_model import rate_reached

        return rate_reached(self.totals["offered"], self.totals["sent"])


def open_model_line(facts: OpenModelFacts) -> str:
    """One line for the report: offered vs sent, dropped, and which p99 is which."""
    totals = facts.totals
    share = totals["sent"] / totals["offered"]
    latencies = ""
    if facts.corrected_p99 is not None and facts.service_p99 is not None:
        latencies = (f" p99 {facts.corrected_p99:.1f} ms corrected (from the intended time), "
                     f"{facts.service_p99:.1f} ms service (from the send).")
    reached = "rate reached" if facts.rate_reached else "rate NOT reached"
    span = f" One point: the mean of {facts.bucket_seconds} s." if facts.bucket_seconds > 1 else ""
    return (f"Open model: {totals['offered']:,} offered, {totals['sent']:,} sent ({share:.1%}, {reached}), "
            f"{totals['dropped']:,} dropped.{latencies}{span}")


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
