"""Capacity: the highest offered rate at which every limit (SLO) holds, confirmed by a hold.

    result = search(run_step, ["p99<200ms", "queue_growth<=0"], SearchSettings(start=50, confirm=120))
    print(format_steps(result)); print(format_verdict(result))
    write_capacity(result, folder)          # capacity.json, its format in _file.py
    sys.exit(result.exit_code(expect=400))  # 3 when no capacity, or below the one expected

`run_step(rate, duration) -> StepResult` runs one fixed-rate open-model step
and says what it measured; the search is pure, so it can be tested against a
simulated server. ``local_step_runner(work_fn)`` is a run_step that sends
from this process with the gevent runner; ``StepMeter`` turns a runner's
outcomes into a StepResult. Errors, all ``LoadkitError``:

    LimitError          a limit that cannot be parsed
    SearchError         search settings that cannot be used, or a step that returned no StepResult
    CapacityFileError   a capacity.json that cannot be written or read
"""

from loadkit.capacity._file import (
    CAPACITY_FILE,
    CapacityFileError,
    capacity_from_dict,
    capacity_to_dict,
    read_capacity,
    write_capacity,
)
from loadkit.capacity._limits import Limit, LimitCheck, LimitError, parse_limit, parse_limits
from loadkit.capacity._local import SATURATED_CPU, StepMeter, local_step_runner
from loadkit.capacity._search import (
    CAPACITY,
    EXIT_NOT_MET,
    GENERATOR_LIMITED,
    MAX_RATE_HELD,
    NO_RATE_HELD,
    NOT_CONFIRMED,
    OUT_OF_STEPS,
    CapacityResult,
    SearchError,
    SearchSettings,
    Step,
    Verdict,
    search,
)
from loadkit.capacity._step import StepResult
from loadkit.capacity._table import format_steps, format_verdict

__all__ = [
    "CAPACITY",
    "CAPACITY_FILE",
    "EXIT_NOT_MET",
    "GENERATOR_LIMITED",
    "MAX_RATE_HELD",
    "NOT_CONFIRMED",
    "NO_RATE_HELD",
    "OUT_OF_STEPS",
    "SATURATED_CPU",
    "CapacityFileError",
    "CapacityResult",
    "Limit",
    "LimitCheck",
    "LimitError",
    "SearchError",
    "SearchSettings",
    "Step",
    "StepMeter",
    "StepResult",
    "Verdict",
    "capacity_from_dict",
    "capacity_to_dict",
    "format_steps",
    "format_verdict",
    "local_step_runner",
    "parse_limit",
    "parse_limits",
    "read_capacity",
    "search",
    "write_capacity",
]
