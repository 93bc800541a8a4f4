"""A capacity step run in this process: the gevent open-model runner, its outcomes measured.

    run_step = local_step_runner(send_one, max_sessions=50)
    result = search(run_step, ["p99<200ms", "error_ratio<0.1%"], SearchSettings(start=50))

``StepMeter`` is the part a distributed run reuses per worker: it records
each ``Outcome`` (corrected, service and lag latencies in HdrHistograms of
1 µs to 1 h at 3 digits, errors by class) and the process's CPU, and turns
them with the runner's ``RunSummary`` into a ``StepResult``. The generator
counts as saturated when this process used at least `saturated_cpu` % of
one core during the step (gevent runs on one).
"""

from __future__ import annotations

import time
from collections import Counter

from hdrh.histogram import HdrHistogram

from loadkit.arrivals import RatePlan, WorkerArrivals
from loadkit.capacity._step import PERCENTILES, StepResult
from loadkit.open_model import Outcome
from loadkit.open_model_runner import RunSummary, run

SATURATED_CPU = 90.0
"""% of one core at which the generator itself is taken as the limit."""


def _histogram() -> HdrHistogram:
    return HdrHistogram(1, 3_600_000_000, 3)


def _ms(histogram: HdrHistogram, level: float) -> float:
    return histogram.get_value_at_percentile(level) / 1000


class StepMeter:
    """One step's outcomes and CPU; `record` is the runner's on_outcome."""

    def __init__(self, saturated_cpu: float = SATURATED_CPU, cpu_clock=time.process_time, clock=time.perf_counter):
        self.corrected = _histogram()
        self.service = _histogram()
        self.lag = _histogram()
        self.ok = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.saturated_cpu = saturated_cpu
        self._cpu_clock, self._clock = cpu_clock, clock
        self._cpu_start, self._start = cpu_clock(), clock()

    def record(self, outcome: Outcome) -> None:
        # whole microseconds, at least 1: the histograms' floor
        self.corrected.record_value(max(int(outcome.corrected * 1e6), 1))
        self.service.record_value(max(int(outcome.service * 1e6), 1))
        self.lag.record_value(max(int(outcome.lag * 1e6), 1))
        if outcome.error is None:
            self.ok += 1
        else:
            self.failed += 1
            self.errors[getattr(outcome.error, "key", None) or type(outcome.error).__name__] += 1

    def cpu_percent(self) -> float:
        wall = self._clock() - self._start
        return (self._cpu_clock() - self._cpu_start) / wall * 100 if wall > 0 else 0.0

    def result(self, summary: RunSummary, measures: dict[str, float] | None = None) -> StepResult:
        """The step as a StepResult; `measures` adds what others measured (e2e.p99, queue growth...)."""
        elapsed = summary.elapsed
        done = self.ok + self.failed
        cpu = self.cpu_percent()
        latencies: dict[str, float] = {}
        extra = dict(measures or {})
        if done:
            for name, histogram in (("corrected", self.corrected), ("service", self.service)):
                latencies.update({f"{name}_p{level}": _ms(histogram, level) for level in PERCENTILES})
            extra.update({f"lag.p{level}": _ms(self.lag, level) for level in PERCENTILES})
        return StepResult(
            offered=summary.offered / elapsed if elapsed > 0 else 0.0,
            duration=elapsed,
            achieved=summary.achieved_rate,
            accepted=self.ok / elapsed if elapsed > 0 else 0.0,
            dropped=summary.dropped,
            error_ratio=self.failed / done if done else None,
            errors=dict(self.errors),
            queue_growth=extra.pop("queue_growth", None),
            generator_cpu=cpu,
            generator_saturated=cpu >= self.saturated_cpu,
            measures=extra,
            **latencies,
        )


def local_step_runner(work_fn, max_sessions: int | None = None, policy: str = "queue", arrival: str = "even",
                      seed: int | None = None, drain_timeout: float = 30.0, saturated_cpu: float = SATURATED_CPU):
    """A `run_step(rate, duration)` for ``search`` that sends with `work_fn` from this process."""

    def run_step(rate: float, duration: float) -> StepResult:
        meter = StepMeter(saturated_cpu)
        schedule = WorkerArrivals(RatePlan.constant(rate, duration), arrival, seed)
        summary = run(work_fn, schedule, max_sessions, policy, duration=duration, on_outcome=meter.record,
                      drain_timeout=drain_timeout)
        return meter.result(summary)

    return run_step
