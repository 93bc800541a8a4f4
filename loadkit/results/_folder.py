"""The results folder of a run: where it goes, and run.json, what describes it.

One folder per run (``reports/20261126-001200-demo/`` by default) holds
Locust's CSV files (prefix ``locust``), ``run.json`` and the report.
"""

from __future__ import annotations

import os
import platform
import re
import time
from importlib import metadata as package_metadata
from pathlib import Path

import loadkit
from loadkit.results._lines import Notes, ResultsError, read_json_object, write_json_atomically
from loadkit.results._names import RUN_FILE


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


def _version(package: str) -> str | None:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return None


# The password of a URL's user part: ``submission://alice:secret@mx`` -> ``submission://alice:***@mx``.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:)[^\s/@]*@")


def without_credentials(value):
    """`value` (a run.json value: text, list or object) with every URL's password replaced by ***.

    A target given as ``-H submission://user:password@host`` would otherwise reach
    run.json twice (the target and the command line), and the report from there.
    """
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***@", value)
    if isinstance(value, dict):
        return {key: without_credentials(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_credentials(item) for item in value]
    return value


def write_run_json(folder: Path, **metadata) -> Path:
    """run.json: what ran, against what, when, with which versions. Written last: its
    absence says the run never finished (see `integrity`). Passwords in URLs are
    written as *** (`without_credentials`)."""

    metadata = without_credentials(metadata)
    metadata.setdefault("loadkit_version", loadkit.__version__)
    metadata.setdefault("locust_version", _version("locust"))  # not imported: readers stay Locust-free
    metadata.setdefault("python_version", platform.python_version())
    metadata.setdefault("hostname", platform.node())
    return write_json_atomically(Path(folder) / RUN_FILE, metadata, sort_keys=True)


def read_run_json(folder: Path, notes: Notes) -> dict | None:
    """run.json of a results folder; None when there is none (the run did not finish) or it is damaged."""
    return read_json_object(Path(folder) / RUN_FILE, notes)
