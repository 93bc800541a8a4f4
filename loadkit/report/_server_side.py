"""What the report shows beside the client's numbers: end-to-end delivery and the probes.

Read from a results folder, each file optional (a broken one is a note):

- ``e2e.json``: accepted / delivered / lost / duplicated and the delivery
  latency histogram (see `loadkit.e2e`): a table and a distribution chart;
- ``probes.jsonl``: the server's side once a second (see `loadkit.probes`):
  one chart per probe, on the client charts' time axis;
- ``postfix_log.json``: Postfix's status counts and ``delays=a/b/c/d``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import pandas as pd

from loadkit import results as files
from loadkit.report._charts import COLORS, SERIES_COLORS, _legend, _render, _time_axes, distribution_chart
from loadkit.hdr import Distribution, decode_counts
from loadkit.results import E2E_FILE, Notes

E2E_LABEL = "delivery (send to sink)"

# probe -> (chart title, y label, [(column, legend label)])
PROBE_CHARTS = {
    "postfix": ("Postfix queues", "messages", [("active", "active"), ("incoming", "incoming"), ("deferred", "deferred"),
                                              ("maildrop", "maildrop"), ("hold", "hold")]),
    "apache": ("Apache workers and requests", "workers / requests per s",
               [("busy_workers", "busy workers"), ("idle_workers", "idle workers"), ("requests_per_s", "requests/s")]),
    "host": ("Host CPU", "% of one CPU (process) / of all CPUs (machine)",
             [("cpu_percent", "machine"), ("generator_cpu_percent", "load generator process"),
              ("target_cpu_percent", "target's processes")]),
}


@dataclass
class ServerSide:
    e2e: dict | None = None
    e2e_distribution: Distribution | None = None
    probes: pd.DataFrame | None = None  # time, probe, columns...
    probe_errors: dict[str, str] = field(default_factory=dict)
    postfix_log: dict | None = None


def read_server_side(folder: Path, notes: Notes) -> ServerSide:
    side = ServerSide()
    if not Path(folder).is_dir():
        return side
    folder = Path(folder)
    side.e2e = files.read_e2e(folder, notes)
    if side.e2e and side.e2e.get("latency_histogram"):
        try:
            side.e2e_distribution = Distribution.from_counts(decode_counts(side.e2e["latency_histogram"]))
        except Exception as error:  # noqa: BLE001 - a broken histogram leaves the table
            notes.add(f"{E2E_FILE}: latency histogram unreadable: {error}")
    side.postfix_log = files.read_postfix_log(folder, notes)
    rows = files.read_probes(folder, notes)
    if rows is not None:
        for row in [row for row in rows if "error" in row]:
            side.probe_errors.setdefault(str(row.get("probe")), str(row["error"]))
        rows = [row for row in rows if "error" not in row]
        side.probes = pd.DataFrame(rows) if rows else None
    return side


# -- charts -------------------------------------------------------------------------------


def e2e_chart(side: ServerSide) -> bytes | None:
    if side.e2e_distribution is None or not side.e2e_distribution.total:
        return None
    return distribution_chart({E2E_LABEL: side.e2e_distribution})


def probe_charts(side: ServerSide, origin: float | None, timeline: pd.DataFrame) -> list[tuple[str, str, bytes]]:
    """(key, alt text, png) per probe with data, elapsed seconds from the run's origin."""
    if side.probes is None or origin is None or "probe" not in side.probes:
        return []
    charts = []
    for probe, (title, y_label, columns) in PROBE_CHARTS.items():
        rows = side.probes[side.probes["probe"] == probe]
        present = [(column, label) for column, label in columns if column in rows and rows[column].notna().any()]
        if rows.empty or not present:
            continue
        figure, axes, scale = _time_axes(title, y_label, timeline)
        x = (rows["time"] - origin) / scale
        for index, (column, label) in enumerate(present):
            axes.plot(x, rows[column], color=SERIES_COLORS[index % len(SERIES_COLORS)], linewidth=1.3, label=label)
        axes.set_ylim(bottom=0)
        _legend(axes)
        charts.append((f"probe-{probe}", f"{title} over time", _render(figure)))
    return charts


# -- HTML -------------------------------------------------------------------------------------


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "–"


def e2e_html(side: ServerSide) -> str:
    e2e = side.e2e
    if not e2e:
        return ""
    accepted = e2e.get("accepted")
    rows = [
        ("Accepted by the target", e2e.get("accepted"), "a positive end-of-data reply to the users"),
        ("Delivered", e2e.get("delivered"), "reached the sink (first arrival of each accepted message)"),
        ("Lost", e2e.get("lost"), "accepted, never delivered"),
        ("Duplicated", e2e.get("duplicated"), "arrivals beyond the first of a message"),
        ("Unexpected", e2e.get("unexpected"), "delivered without the users having seen them accepted"),
    ]
    cells = "".join(
        f"<tr><td>{escape(name)}</td><td class=\"num\">{_count(value)}</td>"
        f"<td class=\"num\">{_share(value, accepted)}</td><td>{escape(note)}</td></tr>"
        for name, value, note in rows
    )
    table = ('<table id="e2e-table"><thead><tr><th>Messages</th><th class="num">count</th>'
             f'<th class="num">of accepted</th><th></th></tr></thead><tbody>{cells}</tbody></table>')
    latency = e2e.get("latency_ms") or {}
    latency_text = ""
    if latency:
        parts = [f"{key} {latency[key]:,.1f} ms" for key in ("p50", "p90", "p99", "p99.9", "max") if key in latency]
        latency_text = f'<p>Delivery latency (send to the sink\'s arrival): {escape(", ".join(parts))}.</p>'
    drain = e2e.get("drain") or {}
    notes = []
    if drain:
        if drain.get("drained"):
            notes.append(f"The target's queue was drained {drain.get('seconds', 0):.1f} s after the test stopped.")
        else:
            notes.append(f"The target's queue was NOT empty after the drain ({drain.get('left', '?')} messages left, "
                         f"timeout {drain.get('timeout', '?')} s): those count as lost.")
    offset = e2e.get("clock_offset_ms")
    method = e2e.get("clock_offset_method")
    if method == "same host":
        notes.append("Senders and sink ran on one host, one clock: no clock offset to correct (0 ms). "
                     "Runs across hosts would need the offset measured; that is not done yet.")
    elif e2e.get("clock_offsets_ms") is not None:
        offsets = e2e["clock_offsets_ms"]
        round_trips = e2e.get("clock_round_trips_ms") or {}
        measured = ", ".join(
            f"{source} {value:+.3f} ms" + (f" (±{round_trips[source] / 2:.3f})" if source in round_trips else "")
            for source, value in sorted(offsets.items()))
        notes.append(f"Clock offsets corrected, the sink's clock minus each sender's: {measured or 'none measured'}; "
                     f"measured {method}.")
        for source, problem in sorted((e2e.get("clock_offsets_unmeasured") or {}).items()):
            notes.append(f"No clock offset for {source}, its delays are not corrected: {problem}.")
    elif offset is not None:
        notes.append(f"Clock offset corrected: {offset} ms ({method}).")
    note = "".join(f'<p class="note">{escape(text)}</p>' for text in notes)
    return table + dkim_html(e2e) + latency_text + note


def dkim_html(e2e: dict) -> str:
    """The sink's DKIM verdicts on the delivered messages (``loadkit sink --dkim-verify``), if it gave any."""
    dkim = e2e.get("dkim")
    if not isinstance(dkim, dict):
        return ""
    rows = [(f"DKIM {result}", domain, count) for result in ("pass", "fail")
            for domain, count in sorted((dkim.get(result) or {}).items())]
    rows.append(("DKIM none", "", dkim.get("none")))
    delivered = e2e.get("delivered")
    cells = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(domain)}</td><td class=\"num\">{_count(count)}</td>"
        f"<td class=\"num\">{_share(count, delivered)}</td></tr>"
        for name, domain, count in rows
    )
    return ('<table id="dkim-table"><thead><tr><th>Verified at the sink</th><th>signing domain</th>'
            f'<th class="num">count</th><th class="num">of delivered</th></tr></thead><tbody>{cells}</tbody></table>')


def _share(value, total) -> str:
    if not isinstance(value, int) or not isinstance(total, int) or total <= 0:
        return "–"
    return f"{100.0 * value / total:.3g}%"


def server_html(side: ServerSide) -> str:
    parts = []
    for probe, error in sorted(side.probe_errors.items()):
        parts.append(f'<p class="problem">probe {escape(probe)} failed: {escape(error)}</p>')
    log = side.postfix_log
    if log:
        status = ", ".join(f"{word} {count:,}" for word, count in (log.get("status") or {}).items()) or "none"
        parts.append(f"<p>Postfix's log: {log.get('deliveries', 0):,} delivery attempts ({escape(status)}).</p>")
        delays = log.get("delays_ms") or {}
        if delays:
            names = [("total", "delay"), ("before_queue", "a: before the queue manager"), ("in_queue", "b: in the queue"),
                     ("connection", "c: connection setup"), ("transmission", "d: transmission")]
            rows = "".join(
                f"<tr><td>{escape(label)}</td>" + "".join(
                    f'<td class="num">{delays[key].get(p, float("nan")):,.1f}</td>' for p in ("p50", "p90", "p99", "max"))
                + "</tr>"
                for key, label in names if key in delays
            )
            parts.append('<table id="postfix-delays"><thead><tr><th>Postfix delays (ms)</th><th class="num">p50</th>'
                         '<th class="num">p90</th><th class="num">p99</th><th class="num">max</th></tr></thead>'
                         f"<tbody>{rows}</tbody></table>"
                         '<p class="note">Postfix logs delays in steps of 10 ms (0.01 s) and rounds small ones to 0.</p>')
    return "".join(parts)
