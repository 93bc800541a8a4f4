"""How long a report of a long run takes, and how much memory: synthetic runs of 1 and 24 hours.

    python bench/report_bench.py [--seconds 3600] [--rate 5000] [--keep DIR]
    python bench/report_bench.py --soak           # 24 hours at 10,000 msgs/s (86,400 intervals)
    python bench/report_bench.py --soak --profile report.prof

Writes a results folder through the writers a run uses (`IntervalStore`:
metrics.jsonl one interval a second, two request names and eight phases each
interval, real HdrHistograms, and metrics-minute.jsonl, each minute of them
merged; `loadkit.results`' run.json and events.jsonl), then runs ``loadkit
report`` and ``loadkit check`` on it, each in a fresh process, and prints
each one's CPU seconds (user + system), wall seconds and peak RSS. The budget
is the soak goal, 30 CPU seconds and 1 GiB for the report; the exit code is 1
when a report is over it. A run of more than ten hours is read from its
minutes; ``--without-minutes`` also times both on a copy of the folder
without them (hard links), the read of every second that a run cut short
gets.

A folder of 6 hours or more is kept under --cache (default
/tmp/loadkit-report-bench) and reused: the 24-hour one is over a GiB and
takes minutes to write. --profile runs the report under cProfile into FILE
and prints its top functions.

The histograms are made with numpy (hdrh's own bucket index, computed for a
whole array of latencies) and drawn from a pool per load level, each decoded
once and its text kept (`PooledSeries`), so writing is quick: the store
merges each second's counts into its minute and encodes each minute, as in
a run, but writes each second's pooled text instead of encoding it again.
The report still decodes and merges every histogram it reads.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadkit.metrics._intervals import IntervalStore
from loadkit.metrics._series import MergedCounts, MergedSeries
from loadkit.results import (
    METRICS_FILE,
    MINUTES_FILE,
    RUN_FILE,
    open_events,
    open_metrics,
    open_minutes,
    write_event,
    write_run_json,
)

NAMES = (("SMTP", "send"), ("SMTP", "send-pipelined"))
PHASES = ("connect", "banner", "helo", "mail", "rcpt", "data", "end-of-data", "quit")
PHASE_SHARE = (0.04, 0.06, 0.06, 0.08, 0.10, 0.08, 0.50, 0.08)  # of a message's latency
LEVELS = 24  # load levels with histograms of their own
VARIANTS = 6  # histograms per level and series, picked in turn
BUDGET_CPU_SECONDS = 30.0
BUDGET_BYTES = 1 << 30
START = 1_795_652_195.0
CACHED_FROM_SECONDS = 6 * 3600
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "loadkit-report-bench"
CHECKS = ("p99<2s", "phase.end-of-data:p99<2s", "fail_ratio<1%")


def record_micros(histogram: HdrHistogram, micros: np.ndarray) -> None:
    """hdrh's record_value for a whole array at once (its _counts_index_for, vectorised)."""
    micros = np.clip(micros.astype(np.int64), 1, histogram.highest_trackable_value)
    magnitude = histogram.unit_magnitude
    half = histogram.sub_bucket_half_count_magnitude
    bit_length = np.frexp((micros | histogram.sub_bucket_mask).astype(np.float64))[1]
    bucket = bit_length - magnitude - (half + 1)
    index = ((bucket + 1) << half) + (micros >> (bucket + magnitude)) - histogram.sub_bucket_half_count
    added = np.bincount(index)
    counts = np.frombuffer(histogram.counts, dtype=np.uint64)
    counts[: len(added)] += added.astype(np.uint64)
    histogram.total_count += len(micros)
    histogram.min_value = min(histogram.min_value, int(micros.min()))
    histogram.max_value = max(histogram.max_value, int(micros.max()))


def encoded(rng: np.random.Generator, samples: int, median_us: float) -> str:
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    record_micros(histogram, rng.lognormal(math.log(median_us), 0.55, samples))
    return histogram.encode().decode("ascii")


class PooledSeries(MergedSeries):
    """A series whose histogram comes from the pool: counts decoded once, shared by every second
    that draws it, and its text written as it is."""

    __slots__ = ("text",)

    def __init__(self, kind: str, type_: str, name: str, counts: MergedCounts, text: str, ok: int, failed: int,
                 bytes_: int, errors: dict):
        super().__init__(kind, type_, name)
        self.histogram, self.text = counts, text
        self.ok, self.failed, self.bytes, self.errors = ok, failed, bytes_, errors

    def to_json(self) -> dict:
        return {"kind": self.kind, "type": self.type, "name": self.name, "ok": self.ok, "failed": self.failed,
                "bytes": self.bytes, "errors": self.errors, "histogram": self.text}

    def release(self) -> None:
        pass  # the counts belong to the pool


def pooled(text: str) -> tuple[MergedCounts, str]:
    counts = MergedCounts()
    counts.add_encoded(text)
    return counts, text


def load_profile(seconds: int, rate: int) -> np.ndarray:
    """msgs/s each second: a 5-minute ramp, a plateau, a 2-minute dip two thirds in."""
    t = np.arange(seconds, dtype=float)
    ramp = np.clip(t / max(min(300, seconds / 6), 1), 0, 1)
    dip = np.where((t > seconds * 0.66) & (t < seconds * 0.66 + 120), 0.55, 1.0)
    return np.rint(rate * ramp * dip).astype(int)


def write_run(folder: Path, seconds: int, rate: int, seed: int = 1) -> Path:
    """A results folder as a run writes it; run.json last, as a finished run does."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    profile = load_profile(seconds, rate)
    per_name = max(rate // len(NAMES), 1)
    pool: dict[tuple[str, int], list[tuple[MergedCounts, str]]] = {}
    for level in range(LEVELS):
        load = (level + 0.5) / LEVELS
        samples = max(int(per_name * load), 1)
        median = 4000 * (1 + 3 * load**6)  # latency turns up near full load: the knee
        for _, name in NAMES:
            pool[(name, level)] = [pooled(encoded(rng, samples, median)) for _ in range(VARIANTS)]
        for phase, share in zip(PHASES, PHASE_SHARE):
            pool[(phase, level)] = [pooled(encoded(rng, samples * len(NAMES), median * share)) for _ in range(VARIANTS)]
    events = open_events(folder)
    write_event(events, "run_started", at=START)
    out, minutes_out = open_metrics(folder), open_minutes(folder)
    store = IntervalStore(out, minutes_out=minutes_out)
    for second, messages in enumerate(profile.tolist()):
        level = min(int(messages / rate * LEVELS), LEVELS - 1)
        pick = second % VARIANTS
        series = []
        for type_, name in NAMES:
            count = messages // len(NAMES)
            failed = count // 1000
            errors = {"451 4.3.0 at end-of-data": failed // 2, "550 5.1.1 at RCPT": failed - failed // 2} if failed else {}
            series.append(PooledSeries("request", type_, name, *pool[(name, level)][pick], count - failed, failed,
                                       (count - failed) * 5120, errors))  # fmt: skip
        for phase in PHASES:
            series.append(PooledSeries("phase", "SMTP", phase, *pool[(phase, level)][pick], messages, 0, 0, {}))
        start = START + second
        store.add(start, start + 1, series)
        store.set_users(start, start + 1, int(200 * min(second / 300, 1)))
        store.flush(start + 1)
        if second == int(seconds * 0.66):
            write_event(events, "worker_missing", worker="w3", detail="no heartbeat", at=START + second)
    store.flush()  # the last minute
    out.close()
    minutes_out.close()
    write_event(events, "run_stopped", at=START + seconds)
    events.close()
    write_run_json(folder, command="report_bench", target="smtp://127.0.0.1:2525", users=200, duration=seconds,
                   started_at=START, stopped_at=START + seconds, workers=4)  # fmt: skip
    return folder


def measure_child(command: list[str]) -> dict:
    """CPU seconds (user + system), wall seconds and peak RSS (bytes) of one fresh process."""
    with tempfile.TemporaryFile("w+") as output, tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=output, stderr=errors, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own usage, not every child's so far
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        errors.seek(0)
        return {"cpu": usage.ru_utime + usage.ru_stime, "wall": wall, "peak": usage.ru_maxrss * 1024,
                "exit": child.returncode, "stdout": output.read(), "stderr": errors.read()}  # fmt: skip


def loadkit(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "loadkit", *arguments]


def profile_report(folder: Path, path: Path, top: int = 25) -> None:
    """The report built in this process under cProfile: the top functions by cumulative time."""
    from loadkit.report import build_report

    profiler = cProfile.Profile()
    profiler.runcall(build_report, folder, folder / "report-profiled.html")
    profiler.dump_stats(path)
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def time_folder(folder: Path, skip_check: bool) -> tuple[dict, dict | None]:
    """`loadkit report` and `loadkit check` of one folder, each in a fresh process, printed."""
    report = folder / "report.html"
    built = measure_child(loadkit("report", str(folder)))
    if built["exit"] != 0:
        sys.exit(f"report_bench: loadkit report failed: {built['stderr'].strip()[-500:]}")
    print(f"report: {built['cpu']:.2f} s CPU, {built['wall']:.2f} s wall, peak RSS {built['peak'] / 2**20:,.0f} MiB, "
          f"report.html {report.stat().st_size / 2**20:.2f} MiB")  # fmt: skip
    print("  " + built["stderr"].strip().replace("\n", "\n  "))
    built["report_html_bytes"] = report.stat().st_size
    checked = None
    if not skip_check:
        with tempfile.TemporaryDirectory(prefix="report-bench-") as scratch:
            verdicts = Path(scratch) / "verdicts.json"
            checked = measure_child(loadkit("check", str(folder), "--json", str(verdicts),
                                            *(f"--check={check}" for check in CHECKS)))  # fmt: skip
            if checked["exit"] not in (0, 3):
                sys.exit(f"report_bench: loadkit check failed: {checked['stderr'].strip()[-500:]}")
            sources = sorted({one["source"] for one in json.loads(verdicts.read_text())["verdicts"] if one["source"]})
        print(f"check: {checked['cpu']:.2f} s CPU, {checked['wall']:.2f} s wall, "
              f"peak RSS {checked['peak'] / 2**20:,.0f} MiB ({', '.join(CHECKS)}; from {', '.join(sources)})")  # fmt: skip
    return built, checked


def without_minutes(folder: Path) -> Path:
    """A copy of `folder` without metrics-minute.jsonl, its files hard links: what a run cut short leaves."""
    copy = folder.parent / f"{folder.name}-without-minutes" / folder.name
    shutil.rmtree(copy.parent, ignore_errors=True)
    copy.mkdir(parents=True)
    for path in folder.iterdir():
        if path.is_file() and path.name not in (MINUTES_FILE, "report.html"):
            os.link(path, copy / path.name)
    return copy


def write_in_a_child(folder: Path, args) -> None:
    """`write_run` in a process of its own: a process this one forks starts with its memory (the pool's
    counts, a few hundred MiB), which would count in the peak RSS of what it measures."""
    command = [sys.executable, __file__, "--write", str(folder), "--seconds", str(args.seconds),
               "--rate", str(args.rate), "--seed", str(args.seed)]  # fmt: skip
    if subprocess.run(command, check=False).returncode != 0:
        sys.exit("report_bench: writing the results folder failed")


def results_folder(args) -> tuple[Path, Path | None]:
    """(the folder, a temporary parent to remove afterwards or None)."""
    if args.keep:
        return Path(args.keep) / "bench-run", None
    if args.seconds >= CACHED_FROM_SECONDS:
        return Path(args.cache) / f"run-{args.seconds}s-{args.rate}-seed{args.seed}", None
    parent = Path(tempfile.mkdtemp(prefix="report-bench-"))
    return parent / "bench-run", parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3600, help="run length (default 3600)")
    parser.add_argument("--rate", type=int, default=5000, help="msgs/s at full load (default 5000)")
    parser.add_argument("--soak", action="store_true", help="24 hours at 10,000 msgs/s (--seconds 86400 --rate 10000)")
    parser.add_argument("--seed", type=int, default=1, help="the latencies' random seed (default 1)")
    parser.add_argument("--keep", metavar="DIR", help="write the results folder here and keep it")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help=f"where long runs are kept (default {DEFAULT_CACHE})")
    parser.add_argument("--skip-check", action="store_true", help="time the report only, not loadkit check")
    parser.add_argument("--without-minutes", action="store_true",
                        help=f"also time both on the folder without {MINUTES_FILE} (read every second)")
    parser.add_argument("--profile", metavar="FILE", help="also build the report under cProfile, stats into FILE")
    parser.add_argument("--json", metavar="PATH", help="write the figures there too")
    parser.add_argument("--write", metavar="DIR", help=argparse.SUPPRESS)  # a child process: write the folder only
    args = parser.parse_args(argv)
    if args.soak:
        args.seconds, args.rate = 86_400, 10_000
    if args.write:
        write_run(Path(args.write), args.seconds, args.rate, args.seed)
        return 0
    if args.seconds < 1 or args.rate < 1:
        parser.error("--seconds and --rate must be at least 1")
    folder, temporary = results_folder(args)
    try:
        metrics, minutes = folder / METRICS_FILE, folder / MINUTES_FILE
        if (folder / RUN_FILE).is_file() and minutes.is_file():
            print(f"results: reusing {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)  # cut short, or written before the minutes were
            started = time.perf_counter()
            write_in_a_child(folder, args)
            print(f"results: written in {time.perf_counter() - started:.1f} s")
        histograms = args.seconds * (len(NAMES) + len(PHASES))
        print(f"results: {args.seconds:,} intervals at up to {args.rate:,} msgs/s, {histograms:,} histograms, "
              f"{METRICS_FILE} {metrics.stat().st_size / 2**20:,.1f} MiB, "
              f"{MINUTES_FILE} {minutes.stat().st_size / 2**20:,.1f} MiB")  # fmt: skip
        built, checked = time_folder(folder, args.skip_check)
        within = built["cpu"] < BUDGET_CPU_SECONDS and built["peak"] < BUDGET_BYTES
        print(f"budget: report < {BUDGET_CPU_SECONDS:.0f} s CPU and < {BUDGET_BYTES / 2**30:.0f} GiB: "
              f"{'within' if within else 'OVER'}")  # fmt: skip
        full = None
        if args.without_minutes:
            print(f"without {MINUTES_FILE}:")
            copy = without_minutes(folder)
            try:
                full = dict(zip(("report", "check"), time_folder(copy, args.skip_check)))
            finally:
                shutil.rmtree(copy.parent, ignore_errors=True)
        if args.json:
            figures = {"seconds": args.seconds, "rate": args.rate, "report": built,
                       "report_html_bytes": built["report_html_bytes"], "check": checked,
                       "without_minutes": full,
                       "budget": {"cpu_seconds": BUDGET_CPU_SECONDS, "peak_bytes": BUDGET_BYTES}}  # fmt: skip
            Path(args.json).write_text(json.dumps(figures, indent=2, default=str) + "\n")
        if args.profile:
            profile_report(folder, Path(args.profile))
        return 0 if within else 1
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
