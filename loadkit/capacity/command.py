"""``loadkit capacity``: find the highest rate a target sustains under stated limits.

    loadkit capacity -f locustfiles/smtp.py -H smtp://127.0.0.1:25 --slo 'p99<200ms' --slo 'error_ratio<0.1%'
    loadkit capacity -f locustfiles/postfix_e2e.py -H smtp://127.0.0.1:2525 --slo 'queue_growth<=0' \\
        --probe postfix=DIR --start 50 --step x1.5 --step-time 20s --confirm 2m --expect 400

Each step is its own headless Locust run at a fixed ``--rate`` (with
``--workers N``, a master and N workers): a fresh process per step, so one
step's backlog, connections or warm-up never leak into the next one's
numbers, and each step has a complete results folder of its own, read back
like any run (``loadkit.results``, ``loadkit.thresholds``). Steps go under
RESULTS/<time>-capacity/step-NN-RATE/; the search's capacity.json and
junit.xml beside them. Exit codes: 0 capacity found (and at least
``--expect``), 3 not met or generator-limited, 2 bad input.
"""

from __future__ import annotations

import math
import resource
import subprocess
import sys
import time
from pathlib import Path

from loadkit.arrivals import ArrivalError, parse_timespan
from loadkit.capacity._file import write_capacity
from loadkit.capacity._limits import parse_limits
from loadkit.capacity._search import SearchError, SearchSettings, search
from loadkit.capacity._step import PERCENTILES, StepResult
from loadkit.capacity._table import format_steps, format_verdict
from loadkit.errors import UsageError
from loadkit.server_side import queue_growth

SATURATED = 90.0  # % of one core the step's Locust process used or waited for (run queue): the generator is the limit
START_AHEAD = 1.0  # the open model starts its schedule this long after the test (loadkit.open_model_locust)
STEP_SLACK = 30  # -t beyond the plan: the staged plan ends each step, -t only bounds it
EXAMPLES = "--slo 'p99<200ms' --slo 'error_ratio<0.1%'"


def add_arguments(parser) -> None:
    parser.add_argument("-f", "--locustfile", required=True, help="the locustfile whose users send (SmtpUser...)")
    parser.add_argument("-H", "--host", required=True, help="the target, e.g. smtp://127.0.0.1:25")
    parser.add_argument("--slo", action="append", default=[], metavar="LIMIT",
                        help="a limit every step must hold, repeatable: p99<200ms (corrected), service.p99<50ms, "
                             "error_ratio<0.1%%, queue_growth<=0, rate_reached (always added)")
    parser.add_argument("--start", type=float, default=50.0, metavar="RATE", help="first step's rate, messages/s")
    parser.add_argument("--step", default="x2", metavar="xF|+N",
                        help="ramp: multiply (x1.5) or add (+50) after each step that held (default x2)")
    parser.add_argument("--step-time", default="20s", metavar="TIME", help="each step's length (default 20s)")
    parser.add_argument("--confirm", default="1m", metavar="TIME", help="the hold at the rate found (default 1m)")
    parser.add_argument("--precision", type=float, default=0.05, metavar="SHARE",
                        help="bisect until held and failed rates are this share apart (default 0.05)")
    parser.add_argument("--max-rate", type=float, default=None, metavar="RATE", help="never step above this rate")
    parser.add_argument("--max-steps", type=int, default=30, metavar="N", help="at most N steps (default 30)")
    parser.add_argument("--expect", type=float, default=None, metavar="RATE",
                        help="exit 3 unless the capacity is at least RATE messages/s")
    parser.add_argument("-u", "--users", type=int, default=50, metavar="N",
                        help="sessions of each step (the open model's pool, default 50)")
    parser.add_argument("--max-sessions", type=int, default=0, metavar="N", help="cap on messages in flight per process")
    parser.add_argument("--overload", default="queue", choices=("queue", "drop"), help="when no session is free")
    parser.add_argument("--arrival", default="even", choices=("even", "poisson"), help="arrival spacing")
    parser.add_argument("--workers", type=int, default=0, metavar="N", help="run each step on a master and N workers")
    parser.add_argument("--probe", action="append", default=[], metavar="SPEC",
                        help="passed to each step (e.g. postfix=DIR): queue_growth comes from the Postfix probe")
    parser.add_argument("--results", default="reports", metavar="DIR", help="parent of the search's folder")
    parser.add_argument("--locust-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for every step's locust command, repeatable")


def settings_from(args) -> SearchSettings:
    try:
        step_duration = parse_timespan(args.step_time)
        confirm = parse_timespan(args.confirm)
    except ArrivalError as error:
        raise UsageError(str(error)) from None
    step = str(args.step).strip()
    factor, add = 2.0, None
    try:
        if step.startswith(("x", "*")):
            factor = float(step[1:])
        elif step.startswith("+"):
            add = float(step[1:])
        else:
            raise ValueError
    except ValueError:
        raise UsageError(f"--step {args.step!r}: expected x1.5 (multiply) or +50 (add)") from None
    return SearchSettings(start=args.start, factor=factor, step=add, step_duration=step_duration, confirm=confirm,
                          precision=args.precision, max_rate=args.max_rate, max_steps=args.max_steps)


class LocustSteps:
    """`run_step(rate, duration)`: one headless Locust run per step, its results folder read back."""

    def __init__(self, args, folder: Path, saturated_cpu: float = SATURATED):
        self.args = args
        self.folder = folder
        self.saturated_cpu = saturated_cpu
        self.count = 0

    def command(self, rate: float, duration: float, results: Path) -> list[str]:
        args = self.args
        seconds = math.ceil(duration + START_AHEAD) + STEP_SLACK  # a bound only: the plan ends the run
        command = [sys.executable, "-m", "locust", "-f", args.locustfile, "-H", args.host, "--headless",
                   "-u", str(args.users), "-r", str(max(args.users, 1) * 10), "-t", f"{seconds}s",
                   "--rate", f"{rate:g}:0s,{rate:g}:{duration:g}s", "--arrival", args.arrival,
                   "--overload", args.overload, "--only-summary", "--results", str(results)]
        if args.max_sessions:
            command += ["--max-sessions", str(args.max_sessions)]
        for probe in args.probe:
            command += ["--probe", probe]
        return command + list(args.locust_arg)

    def __call__(self, rate: float, duration: float) -> StepResult:
        self.count += 1
        results = self.folder / f"step-{self.count:02d}-{rate:g}"
        command = self.command(rate, duration, results)
        print(f"loadkit capacity: step {self.count}: {rate:g}/s for {duration:g} s", flush=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        status, output = self._run(command, duration)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        (results / "locust-output.txt").parent.mkdir(parents=True, exist_ok=True)
        (results / "locust-output.txt").write_text(output)
        cpu = ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) / wall * 100
        folders = [path for path in results.iterdir() if path.is_dir()] if results.is_dir() else []
        if status not in (0, 3) or not folders:
            raise SearchError(f"the step at {rate:g}/s did not run (locust exit {status}): "
                              f"{_last_line(output)}")
        return read_step(folders[0], duration, cpu, self.saturated_cpu, processes=max(self.args.workers, 1))

    def _run(self, command: list[str], duration: float) -> tuple[int, str]:
        timeout = duration + 120
        workers = self.args.workers
        if not workers:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
            return done.returncode, done.stdout + done.stderr
        master = subprocess.Popen(command + ["--master", "--expect-workers", str(workers),
                                             "--master-bind-host", "127.0.0.1", "--master-bind-port", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        port = _master_port(master.pid)
        worker_processes = [subprocess.Popen([sys.executable, "-m", "locust", "-f", self.args.locustfile, "--worker",
                                              "--master-host", "127.0.0.1", "--master-port", str(port)],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                            for _ in range(workers)]
        try:
            output, _ = master.communicate(timeout=timeout)
        finally:
            for worker in worker_processes:
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
        return master.returncode, output


def _master_port(pid: int, wait: float = 30.0) -> int:
    """The port the master bound (port 0: the kernel chose), read from ss."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if f"pid={pid}," in line:
                return int(line.split()[3].rsplit(":", 1)[1])
        time.sleep(0.1)
    raise SearchError("the step's locust master never listened")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def read_step(folder: Path, duration: float, cpu: float, saturated_cpu: float = SATURATED,
              processes: int = 1) -> StepResult:
    """A StepResult from one step's results folder (metrics.jsonl, events.jsonl, probes, run.json).

    `cpu` is the step's processes' CPU over their whole life, start-up included;
    a local run's own measure over the test (run.json) replaces it. A step lasts
    minutes: metrics.jsonl is read whole, its minutes would save nothing."""
    from loadkit.hdr import decode, merge_into, new_histogram, percentiles_ms
    from loadkit.results import (
        Notes,
        read_events,
        read_intervals,
        read_probes,
        read_run_json,
    )

    notes = Notes()
    run = read_run_json(folder, notes) or {}
    facts = run.get("open_model") or {}
    measured = facts.get("generator_demand", facts.get("generator_cpu"))
    if isinstance(measured, (int, float)):
        cpu, processes = float(measured), 1
    counts = {"offered": 0, "sent": 0, "dropped": 0}
    ok = failed = 0
    errors: dict[str, int] = {}
    histograms = {"corrected": new_histogram(), "service": new_histogram(), "lag": new_histogram()}
    for _number, interval in read_intervals(folder, notes, decode=decode):
        for series in interval.get("series", ()):
            kind, name = series.get("kind"), series.get("name")
            if kind == "open" and name in counts:
                counts[name] += series.get("ok", 0)
            elif kind == "request":
                ok += series.get("ok", 0)
                failed += series.get("failed", 0)
                for key, count in (series.get("errors") or {}).items():
                    errors[key] = errors.get(key, 0) + count
                if series.get("histogram"):
                    merge_into(histograms["corrected"], series["histogram"])
            elif kind == "phase" and name in ("service", "lag") and series.get("histogram"):
                merge_into(histograms[name], series["histogram"])
    latencies, measures = {}, {}
    for name, histogram in histograms.items():
        if not histogram.total_count:
            continue
        values = percentiles_ms(histogram, list(PERCENTILES))
        for level in PERCENTILES:
            if name == "lag":
                measures[f"lag.p{level}"] = values[level]
            else:
                latencies[f"{name}_p{level}"] = values[level]
    events = read_events(folder, notes) or []
    cpu_high = any(event.get("kind") == "cpu_high" for event in events)
    growth = queue_growth(read_probes(folder, notes) or [])
    done = ok + failed
    return StepResult(
        offered=counts["offered"] / duration, duration=duration, achieved=counts["sent"] / duration,
        accepted=ok / duration, dropped=counts["dropped"], error_ratio=failed / done if done else None,
        errors=errors, queue_growth=growth, generator_cpu=cpu / processes,
        generator_saturated=cpu_high or cpu / processes >= saturated_cpu, measures=measures, **latencies,
    )


def run(args) -> int:
    from loadkit.capacity._limits import LimitError
    from loadkit.results import new_results_folder

    try:
        limits = parse_limits(args.slo)
    except LimitError as error:
        raise UsageError(f"{error} ({EXAMPLES})") from None
    settings = settings_from(args)
    if not Path(args.locustfile).is_file():
        raise UsageError(f"-f {args.locustfile}: no such locustfile")
    if args.users < 1 or args.workers < 0:
        raise UsageError("-u must be at least 1 and --workers at least 0")
    folder = new_results_folder(Path(args.results), "capacity")
    result = search(LocustSteps(args, folder), limits, settings)
    print(format_steps(result))
    print(format_verdict(result))
    write_capacity(result, folder)
    write_junit(result, folder)
    code = result.exit_code(args.expect)
    if args.expect is not None and code:
        print(f"loadkit capacity: the capacity expected, {args.expect:g}/s, was not met")
    print(f"loadkit capacity: results in {folder}", flush=True)
    return code


def write_junit(result, folder: Path) -> Path:
    """junit.xml of the search: one test case per step, failed with the limits it broke."""
    from xml.sax.saxutils import quoteattr

    from loadkit.results import JUNIT_FILE

    cases = []
    for number, step in enumerate(result.steps, 1):
        name = quoteattr(f"step {number}: {step.phase} {step.rate:g}/s")
        broken = step.broken
        if broken:
            cases.append(f'  <testcase name={name}><failure message={quoteattr(", ".join(broken))}/></testcase>')
        else:
            cases.append(f"  <testcase name={name}/>")
    verdict = result.verdict
    ok = verdict.status == "capacity"
    cases.append(f'  <testcase name={quoteattr("capacity")}>' +
                 ("" if ok else f"<failure message={quoteattr(verdict.status + ': ' + verdict.reason)}/>") +
                 "</testcase>")
    failures = sum(1 for case in cases if "<failure" in case)
    path = folder / JUNIT_FILE
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="loadkit capacity" '
                    f'tests="{len(cases)}" failures="{failures}">\n' + "\n".join(cases) + "\n</testsuite>\n")
    return path

