"""capacity.json: written and read here alone.

One JSON object (UTF-8, indented):

    {
      "format": "loadkit-capacity",
      "version": 1,
      "settings": {"start": 10.0, "factor": 2.0, "step": null, "step_duration": 30.0, "confirm": 120.0,
                   "precision": 0.05, "step_down": 0.05, "max_rate": null, "max_steps": 30, "max_holds": 3},
      "limits": ["p99<200ms", "queue_growth<=0", "rate_reached"],
      "steps": [                                 in the order they ran
        {"phase": "ramp" | "bisect" | "hold", "rate": 80.0, "duration": 30.0,
         "held": true, "generator_limited": false,
         "result": {StepResult: offered, duration, achieved, accepted, delivered, dropped,
                    corrected_p50/p95/p99, service_p50/p95/p99 (ms), error_ratio, errors {class: count},
                    queue_growth (msgs/s), generator_cpu (% of a core), generator_saturated, measures {name: value}},
         "limits": [{"expression": "p99<200ms", "measured": 61.2, "passed": true, "error": null}, ...]}
      ],
      "verdict": {"status": "capacity" | "max-rate-held" | "generator-limited" | "no-rate-held"
                            | "not-confirmed" | "out-of-steps",
                  "capacity": 410.0 | null, "highest_held": 420.0 | null, "failed_at": 440.0 | null,
                  "broken": ["p99<200ms"], "reason": "one line"}
    }

Rates are messages/s, durations seconds, latencies ms. Unknown keys are
ignored on reading, so later versions may add fields.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from loadkit.capacity._limits import LimitCheck
from loadkit.capacity._search import STATUSES, CapacityResult, SearchSettings, Step, Verdict
from loadkit.capacity._step import StepResult
from loadkit.errors import LoadkitError

CAPACITY_FILE = "capacity.json"
FORMAT = "loadkit-capacity"
VERSION = 1


class CapacityFileError(LoadkitError):
    """A capacity.json that cannot be written or read; the message is one line."""


def capacity_to_dict(result: CapacityResult) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "settings": asdict(result.settings),
        "limits": list(result.limits),
        "steps": [{"phase": step.phase, "rate": step.rate, "duration": step.duration, "held": step.held,
                   "generator_limited": step.generator_limited, "result": step.result.to_dict(),
                   "limits": [check.to_dict() for check in step.checks]} for step in result.steps],
        "verdict": asdict(result.verdict),
    }


def capacity_from_dict(data: dict) -> CapacityResult:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    if data.get("version") != VERSION:
        raise ValueError(f"version {data.get('version')!r}, this loadkit reads version {VERSION}")
    settings_fields = SearchSettings.__dataclass_fields__
    settings = SearchSettings(**{k: v for k, v in data["settings"].items() if k in settings_fields})
    steps = [Step(step["phase"], float(step["rate"]), float(step["duration"]), StepResult.from_dict(step["result"]),
                  [LimitCheck.from_dict(check) for check in step["limits"]], bool(step["generator_limited"]))
             for step in data["steps"]]
    verdict_fields = Verdict.__dataclass_fields__
    verdict = Verdict(**{k: v for k, v in data["verdict"].items() if k in verdict_fields})
    if verdict.status not in STATUSES:
        raise ValueError(f"unknown verdict {verdict.status!r}")
    return CapacityResult(settings, list(data["limits"]), steps, verdict)


def write_capacity(result: CapacityResult, path) -> Path:
    """`result` as capacity.json at `path` (a file, or a folder to write capacity.json into)."""
    path = Path(path)
    if path.is_dir():
        path = path / CAPACITY_FILE
    try:
        path.write_text(json.dumps(capacity_to_dict(result), indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise CapacityFileError(f"cannot write {path}: {error.strerror}") from None
    return path


def read_capacity(path) -> CapacityResult:
    """The CapacityResult in capacity.json at `path` (a file or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / CAPACITY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CapacityFileError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise CapacityFileError(f"{path} is not JSON: {error}") from None
    try:
        return capacity_from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        problem = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise CapacityFileError(f"{path} is not a capacity file: {problem}") from None
