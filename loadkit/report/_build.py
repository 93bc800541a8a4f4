"""Results folder in, one HTML file out."""

from __future__ import annotations

from pathlib import Path

from loadkit.report._html import render_page
from loadkit.report._load import ReportError, load_results

DEFAULT_OUTPUT = "report.html"


def build_report(results: str | Path, output: str | Path | None = None) -> Path:
    """Write the HTML report of a results folder (or ``--csv`` prefix) and return its path.

    ``output`` defaults to ``report.html`` next to the CSV files.
    Raises ``ReportError`` (a one-line message) for results or an output that cannot be used.
    """
    loaded = load_results(results)
    target = Path(output) if output is not None else loaded.folder / DEFAULT_OUTPUT
    page = render_page(loaded)
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as error:
        raise ReportError(f"cannot write {target}: {error.strerror or error}") from None
    return target
