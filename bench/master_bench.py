"""The master's CPU per worker report, replayed from 8, 100 and 1,000 simulated workers.

    python bench/master_bench.py [--workers 8,100,1000] [--seconds N] [--rate N] [--profile N] [--json PATH]

What a report holds is built by the workers' own code from synthetic
traffic: `RequestRecorder.on_request` takes --rate messages a second per
worker (two request names, eight SMTP phases each, 0.5% failures at RCPT
with their phase times and error keys, log-normal latencies), its `fold`
makes the series of each whole second and `wire_series` their JSON
(histograms in zlib's stored blocks), laid out as `WorkerReporter.payload`
sends it: a report every 3 s (Locust's
WORKER_REPORT_INTERVAL) with the rest of the interval the previous report
cut, the whole seconds since, and the part of the current second so far.
Sixteen different workers' traffic is recorded, per 3-second slot, and each
simulated worker sends one of them, shifted to its slot's seconds.

The replay feeds those reports, in the order a master would receive them
(workers spread evenly over each 3 s), to the master's own listener
(`ResultsController.on_worker_report`, which merges them into its
`RunRecorder`), and at each simulated second writes the intervals that have
settled to metrics.jsonl (in a scratch folder), as the master's tick does;
the last intervals are written at the end. CPU time (`time.process_time`) is
counted over those calls only.

Included: decoding and merging every histogram and count, per-worker shares,
per-second intervals written to metrics.jsonl (encoding included).
Not included: Locust itself (ZeroMQ, msgpack decoding of the message, and
its own stats merge of the same report), the e2e payload (trace ids, only on
end-to-end runs), building the reports (the workers' side).

Printed per worker count: reports replayed, CPU per report (ms, all of it),
reports a core can take per second, the part of a report's CPU spent merging
it (merge ms) and the CPU spent writing each second's interval (write ms/s,
whatever the number of workers: with few workers it weighs on each report),
a report's size as Locust sends it (loadkit's part, msgpack: KiB), and
memory: the process's resident set (VmRSS)
before the replay and its highest value at any simulated second, the growth
being what the master holds (open intervals, merged series; the reports
themselves were built before). Each count runs in a fresh process.
`--profile N` prints cProfile's top functions of one replay with N workers
instead.

Where the time went (2-core machine shared with other jobs, 1,000 msgs/s per
worker): a report carries about 45 encoded histograms (two names and their
phases, per second, three or four seconds). The master used to decode each
into an hdrh object, about 210 µs, and add all 23,552 counters; now it
decodes into one reused scratch array and adds only the counters between the
first and last non-zero one (about 2,000). Per histogram that took, when
workers sent hdrh's level 6: base64 0.8 µs, zlib inflating 5.2 µs, hdrh's C
decoder 3.2 µs, the add and zeroing the scratch again 3.2 µs, about 12-14 µs
in all. Workers now send zlib's stored blocks (level 0, twice the bytes):
inflating is a copy, 0.4 µs, and base64 1.5 µs, about 8-9 µs in all. Each
second written costs the same whatever the number of workers: 12 keys, 0.83
ms at 8 workers when each merged key was compressed at level 6 (about 70 µs
of zlib and 13 µs of varints for the larger ones), JSON 0.08 ms, adding the
second into the run's totals 0.09 ms; at level 1 zlib takes half, 0.34 ms of
a second's 0.72 ms. With few workers that writing weighs on each report: 8
workers send 2.7 reports a second.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import gc
import io
import json
import math
import pstats
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from locust.rpc.protocol import Message  # noqa: E402

from loadkit.metrics._recorder import RequestRecorder  # noqa: E402
from loadkit.metrics._run import MASTER_SETTLE, RunRecorder  # noqa: E402
from loadkit.metrics._worker import PAYLOAD_KEY, wire_series  # noqa: E402
from loadkit.metrics.plugin import ResultsController  # noqa: E402

REPORT_INTERVAL = 3  # seconds: locust.runners.WORKER_REPORT_INTERVAL
VARIANTS = 16  # different workers' traffic recorded
BASE = 1_800_000_000  # the simulated run's first second (any whole second)
NAMES = ("send", "send-large")
REQUEST_TYPE = "SMTP"
PHASES = ("connect", "banner", "helo", "envelope", "data", "end-of-data", "quit", "rset")
PHASE_MEDIANS_MS = (0.2, 0.5, 0.6, 0.8, 0.4, 4.0, 0.3, 0.3)
FAILURE_RATIO = 0.005


class RcptRefused(Exception):
    """A 550 at RCPT, as loadkit's client reports it (a phase and a code)."""

    phase = "envelope"
    code = 550

    def __repr__(self) -> str:
        return "550 5.1.1 at RCPT"


def _traffic(recorder: RequestRecorder, count: int, rng: random.Random) -> None:
    """`count` messages through the worker's own request listener."""
    for number in range(count):
        phases = {phase: rng.lognormvariate(math.log(median), 0.5) for phase, median in zip(PHASES, PHASE_MEDIANS_MS)}
        failed = rng.random() < FAILURE_RATIO
        if failed:
            for phase in ("data", "end-of-data", "quit"):
                del phases[phase]
        recorder.on_request(REQUEST_TYPE, NAMES[number % 2], sum(phases.values()), 0 if failed else 5120,
                            exception=RcptRefused() if failed else None, context={"phases": phases})


def record_slots(rate: int, seed: int) -> list[list[dict]]:
    """For each of VARIANTS workers: the intervals of one 3-second slot, relative to its first second.

    A report covers [cut - 3, cut): the rest of second -1 from the previous
    cut, seconds 0 and 1, and second 2 up to this cut (`cut` is 2 + a fraction).
    """
    variants = []
    for variant in range(VARIANTS):
        rng = random.Random(seed * 1000 + variant)
        cut = rng.random()  # where in its second this worker's reports fall
        recorder = RequestRecorder()
        pieces = [(-1, cut, 1.0), (0, 0.0, 1.0), (1, 0.0, 1.0), (2, 0.0, cut)]
        intervals = []
        for second, begin, end in pieces:
            _traffic(recorder, max(1, round(rate * (end - begin))), rng)
            series = RequestRecorder.fold(recorder.take())
            intervals.append({"start": float(second), "end": second + (1.0 if end == 1.0 else end),
                              "series": wire_series(series)})
        variants.append(intervals)
    return variants


def schedule(workers: int, seconds: int, variants: list[list[dict]]):
    """(simulated time, worker, data) in arrival order, every worker reporting every 3 s."""
    arrivals = []
    for worker in range(workers):
        offset = REPORT_INTERVAL * worker / workers
        template = variants[worker % len(variants)]
        for slot in range(seconds // REPORT_INTERVAL):
            first = BASE + slot * REPORT_INTERVAL
            intervals = [{"start": first + piece["start"], "end": first + piece["end"], "series": piece["series"]}
                         for piece in template]
            if slot == 0:
                intervals = intervals[1:]  # nothing before the run's first second
            payload = {"intervals": intervals, "examples": [], "events": []}
            arrivals.append((first + REPORT_INTERVAL - 1 + offset / REPORT_INTERVAL, f"worker-{worker}",
                             {PAYLOAD_KEY: payload}))
    arrivals.sort(key=lambda arrival: arrival[0])
    return arrivals


def _controller(folder: Path):
    environment = SimpleNamespace(events=SimpleNamespace(), runner=None, parsed_options=None, locustfile=None)
    controller = ResultsController(environment, None, folder.parent, [])
    controller.run = RunRecorder(environment, folder, None, settle=MASTER_SETTLE).start(ticking=False)
    return controller


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def replay(arrivals, folder: Path, memory: list | None = None) -> tuple[float, float, object]:
    """CPU seconds the master spends merging `arrivals`, and writing intervals; the run recorder.

    With `memory`, the RSS (MiB) at each simulated second is appended to it (not counted as CPU)."""
    controller = _controller(folder)
    run = controller.run
    store = run.store
    merging = writing = 0.0
    next_tick = math.floor(arrivals[0][0]) + 1
    for at, worker, data in arrivals:
        while at >= next_tick:
            if memory is not None:
                memory.append(rss_mib())
            began = time.process_time()
            store.flush(next_tick)
            writing += time.process_time() - began
            next_tick += 1
        began = time.process_time()
        controller.on_worker_report(worker, data)
        merging += time.process_time() - began
    began = time.process_time()
    store.flush()
    writing += time.process_time() - began
    return merging, writing, run


def measure(workers: int, seconds: int, rate: int, seed: int) -> dict:
    variants = record_slots(rate, seed)
    arrivals = schedule(workers, seconds, variants)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # building the reports freed much: give it back before measuring
    rss_before = rss_mib()
    memory: list[float] = []
    with tempfile.TemporaryDirectory(prefix="loadkit-master-bench-") as scratch:
        folder = Path(scratch) / "run"
        folder.mkdir()
        merging, writing, run = replay(arrivals, folder, memory)
        cpu = merging + writing
        ok, failed = run.store.totals.requests()
        lines = sum(1 for _ in open(folder / "metrics.jsonl"))
    sent = sum(sum(series["ok"] + series["failed"] for series in interval["series"] if series["kind"] == "request")
               for _at, _worker, data in arrivals for interval in data[PAYLOAD_KEY]["intervals"])
    sample = arrivals[len(arrivals) // 2 : len(arrivals) // 2 + 32]  # whole reports, not the run's first
    wire_bytes = sum(len(Message("stats", data, worker).serialize()) for _at, worker, data in sample) / len(sample)
    if ok + failed != sent or run.store.late:
        raise SystemExit(f"{workers} workers: merged {ok + failed} requests of {sent} sent, {run.store.late} late")
    return {
        "workers": workers, "reports": len(arrivals), "requests": sent, "intervals_written": lines,
        "ms_per_report": 1000.0 * cpu / len(arrivals), "reports_per_core_second": len(arrivals) / cpu,
        "merging_ms_per_report": 1000.0 * merging / len(arrivals), "writing_ms_per_second": 1000.0 * writing / lines,
        "rss_before_mib": rss_before, "rss_growth_mib": max(memory, default=rss_before) - rss_before,
        "report_kib": wire_bytes / 1024.0,
    }


def profile(workers: int, seconds: int, rate: int, seed: int, top: int = 25) -> str:
    arrivals = schedule(workers, seconds, record_slots(rate, seed))
    with tempfile.TemporaryDirectory(prefix="loadkit-master-bench-") as scratch:
        folder = Path(scratch) / "run"
        folder.mkdir()
        profiler = cProfile.Profile()
        profiler.enable()
        merging, writing, _run = replay(arrivals, folder)
        profiler.disable()
    cpu = merging + writing
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return f"{len(arrivals)} reports, {1000.0 * cpu / len(arrivals):.3f} ms each under cProfile\n{out.getvalue()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="8,100,1000", help="simulated worker counts (default 8,100,1000)")
    parser.add_argument("--seconds", type=int, default=30, help="simulated seconds of each replay (default 30)")
    parser.add_argument("--rate", type=int, default=200, help="messages a second per worker (default 200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=int, metavar="WORKERS", help="cProfile one replay with this many workers")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one worker count, JSON out
    parser.add_argument("--json", metavar="PATH", help="write the figures there too")
    args = parser.parse_args(argv)
    if args.profile:
        print(profile(args.profile, args.seconds, args.rate, args.seed))
        return 0
    if args.one:
        print(json.dumps(measure(args.one, args.seconds, args.rate, args.seed)))
        return 0
    figures = []
    print(f"{args.rate} msgs/s per worker, {args.seconds} simulated seconds, a report every {REPORT_INTERVAL} s")
    print(f"{'workers':>8} {'reports':>8} {'ms/report':>10} {'reports/s/core':>15} {'merge ms':>9} "
          f"{'write ms/s':>11} {'KiB':>5} {'RSS MiB':>8} {'+MiB':>6}")
    for workers in (int(count) for count in args.workers.split(",")):
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(workers), "--seconds", str(args.seconds),
             "--rate", str(args.rate), "--seed", str(args.seed)],
            capture_output=True, text=True, check=False,
        )
        if child.returncode != 0:
            print(child.stderr.strip() or child.stdout.strip(), file=sys.stderr)
            return 2
        one = json.loads(child.stdout)
        figures.append(one)
        print(f"{workers:>8} {one['reports']:>8} {one['ms_per_report']:>10.3f} "
              f"{one['reports_per_core_second']:>15,.0f} {one['merging_ms_per_report']:>9.3f} "
              f"{one['writing_ms_per_second']:>11.2f} {one['report_kib']:>5.1f} {one['rss_before_mib']:>8.0f} "
              f"{one['rss_growth_mib']:>6.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
