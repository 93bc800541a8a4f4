"""What the report shows beside the client's numbers: end-to-end delivery and the probes.

Read from a results folder, each file optional (a broken one is a note):

- ``e2e.json``: accepted / delivered / lost / duplicated and the delivery
  latency histogram (see `loadkit.e2e`): a table and a distribution chart;
- ``probes.jsonl``: the server's side once a second (see `loadkit.probes`):
  one chart per probe, on the client charts' time axis;
- ``postfix_log.json``: Postfix's status counts and ``delays=a/b/c/d``;
- run.json's ``sink`` (the stats of a loadkit sink the run sent to, as the
  demo records them): a table, what the sink received against what Locust
  counted, and the delivery delay it measured from the trace headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import pandas as pd

from loadkit import results as files
from loadkit.hdr import Distribution, decode_counts
from loadkit.report._charts import (
    SERIES_COLORS,
    Drawing,
    _axes,
    _legend,
    _render,
    _time_axes,
    _unit,
    distribution_chart,
    hover,
)
from loadkit.results import E2E_FILE, Notes

E2E_LABEL = "delivery (send to sink)"
SINK_LABEL = "delay (sent to the sink's arrival)"

# probe -> panels of (chart title, y label, [(column, legend label)]); quantities of different
# sizes get panels of their own, so a small one (Apache's busy workers, the saturation signal) is not flat at zero.
PROBE_CHARTS = {
    "postfix": [("Postfix queues", "messages", [("active", "active"), ("incoming", "incoming"), ("deferred", "deferred"),
                                               ("maildrop", "maildrop"), ("hold", "hold")])],
    "apache": [("Apache busy workers", "workers", [("busy_workers", "busy workers")]),
               ("Apache idle workers", "workers", [("idle_workers", "idle workers")]),
               ("Apache requests", "requests/s", [("requests_per_s", "requests/s")])],
    "host": [("Host CPU", "% CPU",
              [("cpu_percent", "machine (% of all CPUs)"), ("generator_cpu_percent", "load generator (% of one CPU)"),
               ("target_cpu_percent", "target's processes (% of one CPU)")])],
}
CPU_COLUMNS = ("cpu_percent", "generator_cpu_percent", "target_cpu_percent")


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


def e2e_chart(side: ServerSide) -> Drawing | None:
    if side.e2e_distribution is None or not side.e2e_distribution.total:
        return None
    return distribution_chart({E2E_LABEL: side.e2e_distribution})


def sink_delay_distribution(sink: dict | None) -> Distribution | None:
    """The delivery delay histogram the sink measured from the trace headers, or None."""
    encoded = ((sink or {}).get("trace") or {}).get("delay_histogram")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        distribution = Distribution.from_counts(decode_counts(encoded))
    except Exception:  # noqa: BLE001 - a broken histogram leaves the table
        return None
    return distribution if distribution.total else None


def sink_chart(sink: dict | None) -> Drawing | None:
    distribution = sink_delay_distribution(sink)
    return distribution_chart({SINK_LABEL: distribution}) if distribution is not None else None


def probe_panels(probe: str, rows: pd.DataFrame) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The panels of a probe's chart that have data: (title, y label, [(column, legend label)])."""
    panels = [(title, y_label, [(c, label) for c, label in columns if c in rows and rows[c].notna().any()])
              for title, y_label, columns in PROBE_CHARTS.get(probe, [])]  # fmt: skip
    return [panel for panel in panels if panel[2]]


def probe_rows(probe: str, probes: pd.DataFrame) -> pd.DataFrame:
    """One probe's samples in time order; a host probe's first sample dropped when its CPU reads 0 everywhere."""
    rows = probes[probes["probe"] == probe].sort_values("time")
    if probe == "host" and len(rows) > 1:
        # A CPU share needs two readings: a first sample of 0 is psutil's first call, not an idle machine.
        first = rows.iloc[0]
        readings = [first[column] for column in CPU_COLUMNS if column in rows and pd.notna(first[column])]
        if readings and all(reading == 0 for reading in readings):
            return rows.iloc[1:]
    return rows


def probe_charts(side: ServerSide, origin: float | None, timeline: pd.DataFrame) -> list[tuple[str, str, Drawing]]:
    """(key, alt text, drawing) per probe with data, elapsed seconds from the run's origin."""
    if side.probes is None or origin is None or "probe" not in side.probes:
        return []
    charts = []
    for probe in PROBE_CHARTS:
        rows = probe_rows(probe, side.probes)
        drawn = probe_panels(probe, rows)
        if rows.empty or not drawn:
            continue
        figure, first_axes, scale = _time_axes(drawn[0][0], drawn[0][1], timeline, size=(10.0, 2.4 * len(drawn) + 0.4))
        if len(drawn) > 1:
            first_axes.set_subplotspec(figure.add_gridspec(len(drawn), 1)[0])
        x = (rows["time"] - origin) / scale
        for position, (title, y_label, columns) in enumerate(drawn):
            axes = first_axes if position == 0 else _axes(figure, title, first_axes.get_xlabel(), y_label, (len(drawn), 1, position + 1))
            if position:
                axes.sharex(first_axes)
            for index, (column, label) in enumerate(columns):
                color = SERIES_COLORS[(index + position) % len(SERIES_COLORS)]
                axes.plot(x, rows[column], color=color, linewidth=1.3, label=label)
                hover(axes, x, rows[column], [f"{t:g} {_unit(scale)}: {label} {v:,.4g}" for t, v in zip(x.round(1), rows[column])])
            axes.set_ylim(bottom=0)
            if len(columns) > 1:
                _legend(axes)
        if len(drawn) > 1:
            for axes in figure.axes[:-1]:
                axes.set_xlabel("")
        title = drawn[0][0] if len(drawn) == 1 else f"{probe.capitalize()} over time"
        charts.append((f"probe-{probe}", f"{title} over time" if len(drawn) == 1 else title, _render(figure)))
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


def sink_verdict(sink: dict | None, accepted, failed) -> tuple[bool, str] | None:
    """(counts agree, "Locust counted N, the sink received N") when the run sent to a loadkit sink."""
    received = (sink or {}).get("messages")
    if not isinstance(received, int) or not isinstance(accepted, (int, float)):
        return None
    accepted = int(accepted)
    failed_text = f" ({int(failed):,} failed)" if isinstance(failed, (int, float)) and failed else ""
    agree = accepted == received
    text = f"Locust counted {accepted:,}{failed_text}, the sink received {received:,}"
    if not agree:
        difference = received - accepted
        text += f": {abs(difference):,} {'more' if difference > 0 else 'fewer'} at the sink than Locust counted."
    return agree, text


def _numbers(mapping) -> str:
    if not isinstance(mapping, dict) or not mapping:
        return "none"
    return ", ".join(f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}" for key, value in mapping.items())


def sink_html(sink: dict | None) -> str:
    """The sink's counters as a table: what it received, what it answered, what it injected."""
    if not isinstance(sink, dict) or not sink:
        return ""
    faults = sink.get("faults") or {}
    fault_parts = []
    if isinstance(faults, dict):
        for kind, commands in faults.items():
            fault_parts.append(f"{kind}: {_numbers(commands)}" if isinstance(commands, dict) else f"{kind}: {commands}")
    tls, auth, store, trace = (sink.get(key) or {} for key in ("tls", "auth", "store", "trace"))
    rows = [
        ("Sessions", _count(sink.get("sessions")), "connections accepted"),
        ("Messages", _count(sink.get("messages")), "transactions answered with a positive end of data"),
        ("Recipients", _count(sink.get("recipients")), "accepted recipients of those messages"),
        ("Bytes", _count(sink.get("bytes")), "message bytes as delivered"),
        ("Replies by code", _numbers(sink.get("replies")), "each reply line sent, by its code"),
        ("Faults injected", "; ".join(fault_parts) or "none", "replies made slow, wrong or cut on purpose"),
        ("Timeouts", _count(sink.get("timeouts")), "sessions closed for silence"),
        ("TLS", f"{_count(tls.get('sessions'))} sessions, {_count(tls.get('failures'))} failed", "STARTTLS handshakes"),
        ("AUTH", f"{_count(auth.get('ok'))} ok, {_count(auth.get('failed'))} refused", "logins"),
    ]
    if store.get("stored") or store.get("skipped") or store.get("failed"):
        rows.append(("Stored", f"{_count(store.get('stored'))} stored, {_count(store.get('skipped'))} skipped, "
                               f"{_count(store.get('failed'))} failed", "written to the maildir"))  # fmt: skip
    if trace:
        rows.append(("Traced messages", f"{_count(trace.get('messages'))} ({_count(trace.get('duplicates'))} duplicated, "
                                        f"{_count(trace.get('early'))} early)", "carrying the trace header"))  # fmt: skip
        delay = trace.get("delay_ms") or {}
        parts = [f"{key} {delay[key]:,.3g} ms" for key in ("p50", "p90", "p99", "p99.9", "max") if isinstance(delay.get(key), (int, float))]
        if parts:
            rows.append(("Delivery delay", ", ".join(parts), "the sink's arrival minus the message's send time"))
    cells = "".join(
        f'<tr><th class="text">{escape(name)}</th><td class="text">{escape(value)}</td><td class="text note">{escape(note)}</td></tr>'
        for name, value, note in rows
    )
    return f'<div class="table-wrap"><table id="sink-table"><tbody>{cells}</tbody></table></div>'
