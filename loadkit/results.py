"""The results folder of a run: where it goes and what describes it.

One folder per run (``reports/20261126-001200-demo/`` by default) holds
Locust's CSV files (prefix ``locust``), ``run.json`` and the report.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import loadkit
from loadkit.errors import LoadkitError

CSV_PREFIX = "locust"


class ResultsError(LoadkitError):
    """The results folder cannot be made or written."""


def new_results_folder(parent: str | Path, label: str) -> Path:
    """Make ``parent/<timestamp>-<label>``; a clear error when `parent` is not writable."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(parent) / f"{stamp}-{label}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = Path(parent) / f"{stamp}-{label}-{suffix}"
    try:
        folder.mkdir(parents=True)
    except OSError as error:
        raise ResultsError(f"cannot create results folder {folder}: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK):
        raise ResultsError(f"results folder {folder} is not writable")
    return folder


def write_run_json(folder: Path, **metadata) -> Path:
    """run.json: what ran, against what, when, with which versions."""
    import locust

    metadata.setdefault("loadkit_version", loadkit.__version__)
    metadata.setdefault("locust_version", locust.__version__)
    metadata.setdefault("python_version", platform.python_version())
    metadata.setdefault("hostname", platform.node())
    path = folder / "run.json"
    path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return path
