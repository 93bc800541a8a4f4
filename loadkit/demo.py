"""``loadkit demo``: the whole loop on one machine, in about 20 seconds.

Starts the sink on a free loopback port, runs a headless Locust load of
SMTP users against it (progress once a second), writes a results folder
(Locust's CSV, metrics.jsonl, events.jsonl, errors.csv, run.json) and its
HTML report, and prints the report's path. Ctrl-C ends the load early: the
results folder and report cover what ran until then (run.json says
``"interrupted": true``) and the exit status is 130. A results file that
cannot be written (a full disk) stops the load at once: one line names the
file, what was written before stays readable, no run.json or report is
written (the run reads as incomplete), and the exit status is 2.

With ``--workers N`` the same load runs as a distributed Locust run on this
machine: ``locust --master`` and N ``locust --worker`` processes, with this
module as their locustfile, against the demo's sink. The master merges the
workers' histograms and writes the results folder (with each worker's
share in run.json); the demo adds the sink's counters and builds the report.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gevent
from locust import constant, task
from locust.util.timespan import parse_timespan

from loadkit.engine import HeadlessRun
from loadkit.errors import UsageError
from loadkit.metrics import RequestRecorder, RunRecorder
from loadkit.results import (
    CSV_PREFIX,
    RUN_FILE,
    Notes,
    ResultsError,
    new_results_folder,
    read_run_json,
    write_run_json,
)
from loadkit.sink import SinkServer
from loadkit.source import INTERRUPTED, check_range, open_files_limit
from loadkit.users import SmtpUser

MAX_SPAWN_RATE = 100_000.0
MAX_WORKERS = 256  # each is a Python process of its own


def add_arguments(parser):
    parser.add_argument("--out", default="reports", metavar="DIR", help="parent folder of the results (default reports/)")
    parser.add_argument("--duration", default="20s", metavar="TIME", help="how long to load: 20, 20s, 1m (default 20s)")
    parser.add_argument("--users", type=int, default=20, metavar="N", help="concurrent SMTP users (default 20)")
    parser.add_argument("--spawn-rate", type=float, default=10.0, metavar="N", help="users started per second (default 10)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="run a Locust master and N worker processes on this machine (default 0: one process)")


class DemoSender(SmtpUser):
    wait_time = constant(0)
    messages_per_connection = 10
    payload_size = 5120

    @task
    def send_mail(self):
        self.send("send")


def run(args) -> int:
    try:
        duration = parse_timespan(args.duration)
    except ValueError as error:
        raise UsageError(f"--duration {args.duration!r}: {error}") from None
    if duration <= 0 or args.users < 1 or not args.spawn_rate > 0:
        raise UsageError("--duration, --users and --spawn-rate must be positive")
    check_range("--users", args.users, 1, max(1, open_files_limit() - 64), " (each user holds a socket: see ulimit -n)")
    check_range("--spawn-rate", args.spawn_rate, 0, MAX_SPAWN_RATE, " users a second")
    if args.workers < 0:
        raise UsageError("--workers must be 0 or more")
    check_range("--workers", args.workers, 0, MAX_WORKERS, " processes on one machine")
    if not args.out.strip():
        raise UsageError("--out '': give a folder (default reports)")
    if args.workers:
        return _run_distributed(args, duration)
    folder = new_results_folder(args.out, "demo")

    sink = SinkServer("127.0.0.1:0").start()
    print(f"loadkit demo: sink listening on {sink.url}; {args.users} users for {duration}s -> {folder}")
    load = HeadlessRun([DemoSender], sink.url, csv_prefix=str(folder / CSV_PREFIX))
    # A results file that cannot be written (a full disk) ends the load: measuring what
    # cannot be kept would only load the target for nothing.
    recording = RunRecorder(load.environment, folder, RequestRecorder(),
                            on_write_failure=lambda _error: load.finished.set())
    try:
        recording.start()  # metrics.jsonl, events, errors
        load.run(args.users, args.spawn_rate, duration=duration, on_tick=_progress(duration))
    finally:
        sink.stop()
        recording.stop(locust_total=load.stats.total)
    print()
    total = load.stats.total
    failure = recording.write_failure or load.write_failure
    if failure is not None:
        elapsed = (load.stopped_at or time.time()) - load.started_at if load.started_at else 0.0
        print(f"loadkit demo: Locust counted {total.num_requests} messages ({total.num_failures} failed); "
              f"the sink received {sink.stats.messages}")
        raise ResultsError(f"{failure}: the load was stopped after {elapsed:.1f} s; what was written before is "
                           f"readable in {folder} (no {RUN_FILE} and no report: the run is marked incomplete)")
    write_run_json(
        folder,
        command="loadkit demo",
        target=sink.url,
        user_classes=[DemoSender.__name__],
        users=args.users,
        spawn_rate=args.spawn_rate,
        duration=duration,
        started_at=load.started_at,
        stopped_at=load.stopped_at,
        requests=total.num_requests,
        failures=total.num_failures,
        sink=sink.stats.as_dict(),
        **({"interrupted": True} if load.interrupted else {}),
    )
    print(
        f"loadkit demo: Locust counted {total.num_requests} messages ({total.num_failures} failed); "
        f"the sink received {sink.stats.messages}" + (" (interrupted)" if load.interrupted else "")
    )
    from loadkit.report import build_report  # pandas and matplotlib only once the load is over

    report = build_report(folder)
    print(f"loadkit demo: report written to {report}")
    if load.interrupted:
        elapsed = load.stopped_at - load.started_at
        print(f"loadkit demo: interrupted after {elapsed:.1f} of {duration:.0f} s", file=sys.stderr)
        return INTERRUPTED
    return 0 if total.num_failures == 0 else 1


# The master waits this long for its workers to connect before it gives up.
WORKERS_MAX_WAIT = 60
_RESULTS_LINE = re.compile(r"^loadkit: results in (.+)$", re.MULTILINE)


def _run_distributed(args, duration: float) -> int:
    """`locust --master` + N `locust --worker` subprocesses against a sink in this process."""
    parent = Path(args.out)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create results folder {parent}: {error.strerror or error}") from None
    seconds = max(1, round(duration))
    sink = SinkServer("127.0.0.1:0").start()
    port = _free_loopback_port()
    print(f"loadkit demo: sink listening on {sink.url}; {args.users} users on {args.workers} workers "
          f"for {seconds}s -> {parent}/")
    locust = [sys.executable, "-m", "locust", "-f", str(Path(__file__).resolve())]
    master_command = [
        *locust, "-H", sink.url, "--headless", "-u", str(args.users), "-r", str(args.spawn_rate),
        "-t", f"{seconds}s", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--expect-workers", str(args.workers), "--expect-workers-max-wait", str(WORKERS_MAX_WAIT),
        "--only-summary", "--results", str(parent), "--check", "no_worker_lost",
    ]
    worker_command = [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    with tempfile.TemporaryDirectory(prefix="loadkit-demo-") as logs:
        master_out = open(Path(logs) / "master.out", "w+")
        master_err = open(Path(logs) / "master.err", "w+")
        processes = [subprocess.Popen(master_command, stdout=master_out, stderr=master_err)]
        interrupted = []

        def interrupt():  # the master ends its test and still writes the results folder
            interrupted.append(time.monotonic())
            if processes[0].poll() is None:
                processes[0].send_signal(signal.SIGTERM if len(interrupted) == 1 else signal.SIGKILL)

        watcher = gevent.signal_handler(signal.SIGINT, interrupt)
        try:
            for _ in range(args.workers):
                processes.append(subprocess.Popen(worker_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            show = _sink_progress(sink)
            while processes[0].poll() is None:  # the sink serves in this process's hub meanwhile
                time.sleep(1)
                show()
            for worker in processes[1:]:
                worker.wait(15)  # workers quit when their master does
        finally:
            watcher.cancel()
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(5)
            sink.stop()
        master_out.seek(0)
        master_err.seek(0)
        output, errors = master_out.read(), master_err.read()
    print()
    found = _RESULTS_LINE.search(output)
    if found is None:
        tail = errors.strip().splitlines()[-1:] or [f"exit code {processes[0].returncode}"]
        raise UsageError(f"the Locust master wrote no results: {tail[0]}")
    folder = Path(found.group(1).strip())
    run = read_run_json(folder, Notes())
    if run is None:
        raise UsageError(f"the Locust master wrote no readable {RUN_FILE} in {folder}")
    run.update(command=f"loadkit demo --workers {args.workers}", sink=sink.stats.as_dict())
    if interrupted:
        run["interrupted"] = True
    write_run_json(folder, **run)
    shares = ", ".join(str(count) for count in run.get("worker_shares", {}).values())
    print(f"loadkit demo: Locust counted {run['requests']} messages ({run['failures']} failed) "
          f"from {run.get('workers', 0)} workers ({shares}); the sink received {sink.stats.messages}")
    from loadkit.report import build_report

    report = build_report(folder)
    print(f"loadkit demo: report written to {report}")
    if interrupted:
        print(f"loadkit demo: interrupted ({run['requests']} messages sent until then)", file=sys.stderr)
        return INTERRUPTED
    return 0 if processes[0].returncode == 0 and run["failures"] == 0 else 1


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _sink_progress(sink):
    """Progress from the sink's side: the load's numbers live in the master process."""
    started = time.monotonic()
    interactive = sys.stdout.isatty()
    last = [started, 0]

    def show():
        now, messages = time.monotonic(), sink.stats.messages
        rate = (messages - last[1]) / max(now - last[0], 1e-6)
        last[:] = [now, messages]
        elapsed = now - started
        line = f"  {elapsed:5.1f}s  sink received {messages:8d} msgs  {rate:7.0f} msgs/s"
        if interactive:
            sys.stdout.write("\r" + line)
        elif int(elapsed) % 5 == 0:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    return show


def _progress(duration: float):
    started = time.monotonic()
    interactive = sys.stdout.isatty()

    def show(load):
        total = load.stats.total
        elapsed = time.monotonic() - started
        line = (
            f"  {elapsed:5.1f}s/{duration:.0f}s  {load.runner.user_count:3d} users  "
            f"{total.num_requests:8d} msgs  {total.current_rps:7.0f} msgs/s  {total.num_failures} failed"
        )
        if interactive:
            sys.stdout.write("\r" + line)
        elif int(elapsed) % 5 == 0 or elapsed >= duration:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    return show
