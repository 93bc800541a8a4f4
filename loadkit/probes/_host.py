"""This machine's CPU and memory, the load generator's CPU, and the target's processes (psutil).

A saturated load generator measures itself, not the target: its own CPU
is sampled beside the machine's so that shows, and a machine whose cores
are all busy for `SATURATED_SECONDS` (at `SATURATED_PERCENT` or more) is
said once per such stretch through `on_saturated` (an integrity event).
"""

from __future__ import annotations

import os
import time

import psutil

from loadkit.probes._base import ProbeError

SATURATED_PERCENT = 95.0
SATURATED_SECONDS = 3.0


class HostProbe:
    """One row per sample; `target_pids` (and their children) are summed as the target's."""

    name = "host"

    def __init__(self, target_pids=(), on_saturated=None, clock=time.monotonic):
        self.target_pids = list(target_pids)
        self.on_saturated = on_saturated  # (detail) -> None, once per saturated stretch
        self.clock = clock
        self.busy = SaturationWatch()
        self._me = psutil.Process(os.getpid())
        self._targets: dict[int, psutil.Process] = {}
        self.prime()

    def prime(self) -> None:
        """Start every CPU measurement now: psutil's first call of each returns 0, which a chart would draw as idle."""
        self._me.cpu_percent(None)
        psutil.cpu_percent(None)
        self._last_sample = self.clock()  # what the next cpu_percent covers starts here
        self._target_processes()

    def _target_processes(self) -> list[psutil.Process]:
        found = []
        for pid in self.target_pids:
            try:
                root = psutil.Process(pid)
                found += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        processes = []
        for process in found:
            known = self._targets.get(process.pid)
            if known is None:  # a new process: its first cpu_percent is 0, the next ones are real
                known = self._targets[process.pid] = process
                try:
                    known.cpu_percent(None)
                except psutil.Error:
                    continue
            processes.append(known)
        return processes

    def sample(self) -> dict:
        try:
            memory = psutil.virtual_memory()
            row = {
                "cpu_percent": psutil.cpu_percent(None),
                "cpus": psutil.cpu_count(),
                "memory_percent": memory.percent,
                "memory_used": memory.total - memory.available,
                "generator_cpu_percent": self._me.cpu_percent(None),
                "generator_rss": self._me.memory_info().rss,
            }
            row["load1"] = os.getloadavg()[0]
        except (psutil.Error, OSError) as error:
            raise ProbeError(f"psutil: {error}") from None
        now = self.clock()
        since, self._last_sample = self._last_sample, now
        saturated = self.busy.add(row["cpu_percent"], since, now)
        if saturated is not None and self.on_saturated is not None:
            self.on_saturated(saturated)
        if self.target_pids:
            cpu = rss = 0.0
            count = 0
            for process in self._target_processes():
                try:
                    cpu += process.cpu_percent(None)
                    rss += process.memory_info().rss
                    count += 1
                except psutil.Error:
                    continue
            row.update(target_cpu_percent=round(cpu, 1), target_rss=int(rss), target_processes=count)
        return row


class SaturationWatch:
    """Stretches of samples at SATURATED_PERCENT or more; says each once it lasts SATURATED_SECONDS."""

    def __init__(self, percent: float = SATURATED_PERCENT, seconds: float = SATURATED_SECONDS):
        self.percent = percent
        self.seconds = seconds
        self.since: float | None = None  # start of the current stretch
        self.said = False
        self.peak = 0.0

    def add(self, cpu_percent: float, since: float, now: float) -> str | None:
        """One sample covering [since, now]; the detail of an event when a stretch just reached its length."""
        if cpu_percent < self.percent:
            self.since, self.said, self.peak = None, False, 0.0
            return None
        if self.since is None:
            self.since = since
        self.peak = max(self.peak, cpu_percent)
        if self.said or now - self.since < self.seconds:
            return None
        self.said = True
        return (f"the machine's CPU at {self.percent:.0f}% or more for {now - self.since:.0f} s "
                f"(peak {self.peak:.0f}%): the load generator shares it, its timings may be late")
