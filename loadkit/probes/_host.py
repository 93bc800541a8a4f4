"""This machine's CPU and memory, the load generator's CPU, and the target's processes (psutil).

A saturated load generator measures itself, not the target: its own CPU
is sampled beside the machine's so that shows.
"""

from __future__ import annotations

import os

import psutil

from loadkit.probes._base import ProbeError


class HostProbe:
    """One row per sample; `target_pids` (and their children) are summed as the target's."""

    name = "host"

    def __init__(self, target_pids=()):
        self.target_pids = list(target_pids)
        self._me = psutil.Process(os.getpid())
        self._targets: dict[int, psutil.Process] = {}
        self.prime()

    def prime(self) -> None:
        """Start every CPU measurement now: psutil's first call of each returns 0, which a chart would draw as idle."""
        self._me.cpu_percent(None)
        psutil.cpu_percent(None)
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
