"""How long a report of a long run takes, and how much memory: a synthetic 1-hour run.

    python bench/report_bench.py [--seconds 3600] [--rate 5000] [--keep DIR]

Writes a results folder as the metrics writer would (one interval a second,
two request names, eight phases each interval, real HdrHistograms), then
builds its report in a fresh process and prints the wall time and that
process's peak RSS. The budget is 20 s and 1 GiB for one hour at 5,000
msgs/s; the exit code is 1 when the build is over it.

The histograms are made with numpy (hdrh's own bucket index, computed for a
whole array of latencies) and drawn from a pool per load level, so writing
the hour takes seconds; the report still decodes and merges every one of
the 36,000 histograms in the file.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

NAMES = (("SMTP", "send"), ("SMTP", "send-pipelined"))
PHASES = ("connect", "banner", "helo", "mail", "rcpt", "data", "end-of-data", "quit")
PHASE_SHARE = (0.04, 0.06, 0.06, 0.08, 0.10, 0.08, 0.50, 0.08)  # of a message's latency
LEVELS = 24  # load levels with histograms of their own
VARIANTS = 6  # histograms per level and series, picked in turn
BUDGET_SECONDS = 20.0
BUDGET_BYTES = 1 << 30
START = 1_795_652_195.0


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


def load_profile(seconds: int, rate: int) -> np.ndarray:
    """msgs/s each second: a 5-minute ramp, a plateau, a 2-minute dip two thirds in."""
    t = np.arange(seconds, dtype=float)
    ramp = np.clip(t / max(min(300, seconds / 6), 1), 0, 1)
    dip = np.where((t > seconds * 0.66) & (t < seconds * 0.66 + 120), 0.55, 1.0)
    return np.rint(rate * ramp * dip).astype(int)


def write_run(folder: Path, seconds: int, rate: int, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    profile = load_profile(seconds, rate)
    per_name = max(rate // len(NAMES), 1)
    pool: dict[tuple[str, int], list[str]] = {}
    for level in range(LEVELS):
        load = (level + 0.5) / LEVELS
        samples = max(int(per_name * load), 1)
        median = 4000 * (1 + 3 * load**6)  # latency turns up near full load: the knee
        for _, name in NAMES:
            pool[(name, level)] = [encoded(rng, samples, median) for _ in range(VARIANTS)]
        for phase, share in zip(PHASES, PHASE_SHARE):
            pool[(phase, level)] = [encoded(rng, samples * len(NAMES), median * share) for _ in range(VARIANTS)]
    with (folder / "metrics.jsonl").open("w") as out:
        for second, messages in enumerate(profile.tolist()):
            level = min(int(messages / rate * LEVELS), LEVELS - 1)
            pick = second % VARIANTS
            series = []
            for type_, name in NAMES:
                count = messages // len(NAMES)
                failed = count // 1000
                errors = {"451 4.3.0 at end-of-data": failed // 2, "550 5.1.1 at RCPT": failed - failed // 2} if failed else {}
                series.append({"kind": "request", "type": type_, "name": name, "ok": count - failed, "failed": failed,
                               "bytes": (count - failed) * 5120, "errors": errors, "histogram": pool[(name, level)][pick]})  # fmt: skip
            for phase in PHASES:
                series.append({"kind": "phase", "type": "SMTP", "name": phase, "ok": messages, "failed": 0, "bytes": 0,
                               "errors": {}, "histogram": pool[(phase, level)][pick]})  # fmt: skip
            users = int(200 * min(second / 300, 1))
            out.write(json.dumps({"start": START + second, "end": START + second + 1, "users": users, "series": series}) + "\n")
    run = {"command": "report_bench", "target": "smtp://127.0.0.1:2525", "users": 200, "duration": seconds,
           "started_at": START, "stopped_at": START + seconds, "workers": 4}  # fmt: skip
    (folder / "run.json").write_text(json.dumps(run))
    with (folder / "events.jsonl").open("w") as out:
        out.write(json.dumps({"time": START, "kind": "run_started", "worker": None, "detail": ""}) + "\n")
        out.write(json.dumps({"time": START + seconds * 0.66, "kind": "worker_missing", "worker": "w3", "detail": "no heartbeat"}) + "\n")
    return folder


def build_in_child(folder: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of ``loadkit report`` in a fresh process."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "report", str(folder)], capture_output=True, text=True, timeout=600
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"report_bench: loadkit report failed: {result.stderr.strip()[-500:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return elapsed, peak_kib * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3600, help="run length (default 3600)")
    parser.add_argument("--rate", type=int, default=5000, help="msgs/s at full load (default 5000)")
    parser.add_argument("--keep", metavar="DIR", help="write the results folder here and keep it")
    args = parser.parse_args(argv)
    parent = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="report-bench-"))
    folder = parent / "bench-run"
    try:
        started = time.perf_counter()
        write_run(folder, args.seconds, args.rate)
        written = time.perf_counter() - started
        size = (folder / "metrics.jsonl").stat().st_size
        histograms = args.seconds * (len(NAMES) + len(PHASES))
        print(f"results: {args.seconds} intervals, {histograms:,} histograms, metrics.jsonl {size / 2**20:,.1f} MiB "
              f"(written in {written:.1f} s)")  # fmt: skip
        elapsed, peak = build_in_child(folder)
        report = folder / "report.html"
        print(f"report: {elapsed:.2f} s wall, peak RSS {peak / 2**20:,.0f} MiB, report.html {report.stat().st_size / 2**20:.2f} MiB")
        within = elapsed < BUDGET_SECONDS and peak < BUDGET_BYTES
        print(f"budget: < {BUDGET_SECONDS:.0f} s and < {BUDGET_BYTES / 2**30:.0f} GiB: {'within' if within else 'OVER'}")
        if args.keep:
            print(f"kept: {report}")
        return 0 if within else 1
    finally:
        if not args.keep:
            shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
