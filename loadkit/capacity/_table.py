"""The search for people: one row per step, each limit ✓ or ✗, then the verdict in a line."""

from __future__ import annotations

from loadkit.capacity._search import CAPACITY, GENERATOR_LIMITED, MAX_RATE_HELD, CapacityResult

_COLUMNS = (
    ("step", None), ("phase", None), ("rate/s", None), ("offered/s", "offered"), ("achieved/s", "achieved"),
    ("accepted/s", "accepted"), ("dropped", "dropped"),
    ("corr p50", "corrected_p50"), ("p95", "corrected_p95"), ("p99", "corrected_p99"),
    ("svc p50", "service_p50"), ("p95", "service_p95"), ("p99", "service_p99"),
    ("errors", "error_ratio"), ("queue/s", "queue_growth"), ("cpu%", "generator_cpu"),
)


def _cell(value, attribute: str | None) -> str:
    if value is None:
        return "-"
    if attribute == "error_ratio":
        return f"{value * 100:.2f}%"
    if attribute == "dropped":
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def format_steps(result: CapacityResult) -> str:
    """The step table; latencies in ms."""
    header = [title for title, _ in _COLUMNS] + list(result.limits)
    rows = [header]
    for number, step in enumerate(result.steps, 1):
        row = [str(number), step.phase + (" (gen)" if step.generator_limited else ""), f"{step.rate:.4g}"]
        row += [_cell(getattr(step.result, attribute), attribute) for _, attribute in _COLUMNS[3:]]
        checks = {check.expression: check for check in step.checks}
        for limit in result.limits:
            check = checks.get(limit)
            row.append("-" if check is None else ("?" if check.error else ("✓" if check.passed else "✗")))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) if i > 1 else cell.ljust(width) for i, (cell, width)
                       in enumerate(zip(row, widths))).rstrip() for row in rows]
    unmeasured = {check.expression: check.error for step in result.steps for check in step.checks if check.error}
    lines += [f"{expression}: {error}" for expression, error in unmeasured.items()]
    return "\n".join(lines)


def format_verdict(result: CapacityResult) -> str:
    """The verdict in one line."""
    verdict = result.verdict
    if verdict.status in (CAPACITY, MAX_RATE_HELD):
        return f"capacity: {verdict.capacity:g} messages/s ({verdict.reason})"
    if verdict.status == GENERATOR_LIMITED:
        return f"generator-limited: {verdict.reason}"
    return f"no capacity ({verdict.status}): {verdict.reason}"
