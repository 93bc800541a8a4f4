"""The Mail tab's numbers: one JSON-ready state of the run, and the rows of the tab's table.

Everything here is computed when the UI asks (Locust polls every ~2 s),
from what the run has recorded (`LiveRun`), the workers' shares, the sink's
counters and end-to-end delivery; nothing runs per request.

Latencies are in µs (the histograms' unit), rates per second over the run
and over its last seconds. Phases come in protocol order (`loadkit.phases`),
then replies by code and phase, rates, end-to-end, the sink and the workers.
A run whose every transaction failed says so first, with its commonest error.
"""

from __future__ import annotations

import json
import time

from loadkit.metrics._series import PHASE, REQUEST
from loadkit.phases import phase_position
from loadkit.webui._live import TABLE_PERCENTILES, reply_of

RECENT_SECONDS = 5  # the timeline's last points a "current" rate is measured over
TABLE_COLUMNS = (
    ("section", "Section"), ("item", "What"), ("count", "Count"), ("rate", "Per second"),
    ("p50", "p50 µs"), ("p95", "p95 µs"), ("p99", "p99 µs"), ("max", "max µs"), ("detail", "Detail"),
)


def _percentiles(total) -> dict:
    values = total.percentiles_us(TABLE_PERCENTILES)
    return {key: None if value is None else int(value) for key, value in zip(("p50", "p95", "p99", "max"), values)}


def _elapsed(run, now: float) -> float:
    if run is None or run.started_at is None:
        return 0.0
    end = run.stopped_at or run.test_stopped_at or now
    return max(end - run.started_at, 0.001)


def threshold_lines(checks) -> list[dict]:
    """The --check latency thresholds a chart can draw: phase.X:pNN<T on phase X, the others on the requests."""
    lines = []
    for check in checks or ():
        if check.percentile is None or check.end_to_end or check.failed:
            continue
        scope = check.scope or ""
        phase = scope.removeprefix("phase.") if scope.startswith("phase.") else None
        lines.append({"expression": check.expression, "phase": phase, "scope": None if phase else (scope or None),
                      "percentile": check.percentile, "limit_ms": check.limit})
    return lines


def build_state(totals: dict, timeline: list[dict], run=None, workers=None, sink=None, e2e: dict | None = None,
                checks=(), runner_state: str = "", now: float | None = None) -> dict:
    """The Mail tab's state (see the module); `totals` and `timeline` are a `LiveRun.snapshot()`."""
    now = time.time() if now is None else now
    elapsed = _elapsed(run, now)

    def per_second(count: int) -> float:
        return count / elapsed if elapsed else 0.0

    requests, phases, replies = [], [], {}
    for total in totals.values():
        if total.kind == REQUEST:
            requests.append({"label": f"{total.type} {total.name}", "ok": total.ok, "failed": total.failed,
                             "count": total.ok + total.failed, "bytes": total.bytes,
                             "rate": per_second(total.ok + total.failed), **_percentiles(total)})
            for key, count in total.errors.items():
                code, phase = reply_of(key)
                reply = replies.setdefault((code, phase), {"code": code, "phase": phase, "count": 0, "example": key})
                reply["count"] += count
        elif total.kind == PHASE:
            phases.append({"type": total.type, "phase": total.name, "count": total.ok + total.failed,
                           "failed": total.failed, "rate": per_second(total.ok + total.failed), **_percentiles(total)})
    requests.sort(key=lambda row: row["label"])
    phases.sort(key=lambda row: (row["type"], phase_position(row["phase"]), row["phase"]))
    accepted = sum(row["ok"] for row in requests)
    reply_rows = []
    if accepted:
        reply_rows.append({"code": "2xx", "phase": "end-of-data", "count": accepted, "example": "accepted"})
    reply_rows += sorted(replies.values(), key=lambda row: (phase_position(row["phase"]), row["code"]))
    for row in reply_rows:
        row["rate"] = per_second(row["count"])

    messages = sum(row["count"] for row in requests)
    failed = sum(row["failed"] for row in requests)
    sessions = sum(row["count"] for row in phases if row["phase"] == "connect")
    byte_count = sum(row["bytes"] for row in requests)
    settled = [point for point in timeline if not point.get("open")]
    recent = (settled or timeline)[-RECENT_SECONDS:]
    recent_seconds = sum(point["seconds"] for point in recent) or 0.0

    def recent_rate(field: str) -> float:
        return sum(point[field] for point in recent) / recent_seconds if recent_seconds else 0.0

    rates = {
        name: {"total": count, "rate": per_second(count), "current": recent_rate(name)}
        for name, count in (("sessions", sessions), ("messages", messages), ("bytes", byte_count))
    }
    alert = None
    if messages and not accepted:
        worst = max(replies.values(), key=lambda row: row["count"], default=None)
        alert = f"every transaction failed: {failed} of {messages}" + (
            f"; most often {worst['example']} ({worst['count']})" if worst else "")
    return {
        "state": runner_state,
        "elapsed": elapsed,
        "alert": alert,
        "requests": requests,
        "phases": phases,
        "replies": reply_rows,
        "rates": rates,
        "e2e": e2e,
        "sink": sink,
        "workers": workers or [],
        "timeline": timeline,
        "thresholds": threshold_lines(checks),
    }


def json_for_html(value) -> str:
    """JSON whose strings cannot open or close a tag: <, > and & as \\u escapes, the values unchanged.

    Error keys and examples are a server's reply texts: whatever reads this JSON
    as markup by mistake still finds no tag in it."""
    text = json.dumps(value, allow_nan=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _number(value, digits: int = 1):
    return None if value is None else round(value, digits)


def table_rows(state: dict) -> list[dict]:
    """The rows of the Mail tab's table (columns: TABLE_COLUMNS), in reading order."""
    rows = []

    def row(section, item, count=None, rate=None, detail="", p50=None, p95=None, p99=None, max=None):
        rows.append({"section": section, "item": item, "count": count, "rate": _number(rate),
                     "p50": p50, "p95": p95, "p99": p99, "max": max, "detail": detail})

    if state["alert"]:
        row("ALERT", "every transaction failed", detail=state["alert"])
    sink = state.get("sink") or {}
    if sink.get("error"):
        row("ALERT", "sink control", detail=sink["error"])
    for request in state["requests"]:
        row("message", request["label"], request["count"], request["rate"], f"{request['failed']} failed",
            request["p50"], request["p95"], request["p99"], request["max"])
    for phase in state["phases"]:
        row("phase", phase["phase"], phase["count"], phase["rate"], f"{phase['failed']} failed",
            phase["p50"], phase["p95"], phase["p99"], phase["max"])
    for reply in state["replies"]:
        where = f" at {reply['phase']}" if reply["phase"] else ""
        row("reply", f"{reply['code']}{where}", reply["count"], reply["rate"], reply["example"])
    for name, rate in state["rates"].items():
        row("rate", f"{name}/s", rate["total"], rate["current"], f"{rate['rate']:.1f}/s over the run")
    e2e = state.get("e2e")
    if e2e:
        for name in ("accepted", "delivered", "lost", "duplicated"):
            if e2e.get(name) is not None:
                row("e2e", name, e2e[name], detail=e2e.get("note", ""))
        if e2e.get("p99_us") is not None:
            row("e2e", "delivery p99", p99=e2e["p99_us"], max=e2e.get("max_us"))
    counters = sink.get("stats")
    if counters:
        for name in ("sessions", "messages", "recipients", "bytes"):
            row("sink", name, counters.get(name))
        for code, count in sorted((counters.get("replies") or {}).items()):
            row("sink", f"reply {code}", count)
    for worker in state["workers"]:
        p99 = worker["p99_us"]
        row("worker", worker["worker"], worker["requests"], worker["rate"], f"{worker['share']:.1%} of requests",
            p99=None if p99 is None else int(p99))
    return rows
