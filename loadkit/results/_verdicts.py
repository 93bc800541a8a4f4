"""verdicts.json and junit.xml: the thresholds of a run, for people and for CI.

verdicts.json::

    {"passed": false, "notes": [...],
     "verdicts": [{"expression": "p95<250ms", "measured": 12.5, "limit": 250.0, "passed": true,
                   "unit": "ms", "error": null, "source": "metrics.jsonl", "status": "passed"}, ...]}

junit.xml: one testsuite, one testcase per threshold (a failure when
measured beyond the limit, an error when it could not be measured).
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

from loadkit.results._lines import Notes
from loadkit.results._names import JUNIT_FILE, VERDICTS_FILE


def verdict_paths(folder: Path) -> tuple[Path, Path]:
    """Where a run's verdicts.json and junit.xml go."""
    return Path(folder) / VERDICTS_FILE, Path(folder) / JUNIT_FILE


def write_verdicts_json(path: Path, verdicts: list[dict], notes: list[str] = ()) -> Path:
    data = {"passed": all(v.get("passed") for v in verdicts), "verdicts": list(verdicts)}
    if notes:
        data["notes"] = list(notes)
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def read_verdicts_json(folder: Path, notes: Notes) -> list[dict]:
    """The verdicts a run wrote: a list of dicts (empty when it had no thresholds).

    Accepts the object above or a bare list of verdicts.
    """
    path = Path(folder) / VERDICTS_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        notes.add(f"cannot read {VERDICTS_FILE}: {getattr(error, 'strerror', None) or error}")
        return []
    if isinstance(data, dict):
        data = data.get("verdicts", [])
    if not isinstance(data, list):
        notes.add(f"{VERDICTS_FILE} holds no list of verdicts")
        return []
    return [item for item in data if isinstance(item, dict)]


def write_junit(path: Path, cases: list[dict], suite: str = "loadkit thresholds") -> Path:
    """`cases`: {name, status (passed|failed|error), message, output}."""
    failures = sum(c["status"] == "failed" for c in cases)
    errors = sum(c["status"] == "error" for c in cases)
    root = ElementTree.Element("testsuites", tests=str(len(cases)), failures=str(failures), errors=str(errors))
    suite_element = ElementTree.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                                           failures=str(failures), errors=str(errors))
    for one in cases:
        case = ElementTree.SubElement(suite_element, "testcase", classname="loadkit.thresholds", name=one["name"])
        if one["status"] == "failed":
            ElementTree.SubElement(case, "failure", message=one["message"], type="threshold").text = \
                f"{one['name']}: {one['message']}"
        elif one["status"] == "error":
            ElementTree.SubElement(case, "error", message=one["message"], type="unmeasured").text = one["message"]
        else:
            ElementTree.SubElement(case, "system-out").text = one["message"]
    ElementTree.indent(root)
    Path(path).write_bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
    return Path(path)


