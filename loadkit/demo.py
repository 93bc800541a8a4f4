"""``loadkit demo``: the whole loop on one machine, in about 20 seconds.

Starts the sink on a free loopback port, runs a headless Locust load of
SMTP users against it (progress once a second), writes a results folder
(Locust's CSV, metrics.jsonl, events.jsonl, errors.csv, run.json) and its
HTML report, and prints the report's path.
"""

from __future__ import annotations

import sys
import time

from locust import constant, task
from locust.util.timespan import parse_timespan

from loadkit.cli import CommandError
from loadkit.engine import HeadlessRun
from loadkit.metrics import RequestRecorder, RunRecorder
from loadkit.results import CSV_PREFIX, ResultsError, new_results_folder, write_run_json
from loadkit.sink import SinkServer
from loadkit.users import SmtpUser


def add_arguments(parser):
    parser.add_argument("--out", default="reports", metavar="DIR", help="parent folder of the results (default reports/)")
    parser.add_argument("--duration", default="20s", metavar="TIME", help="how long to load: 20, 20s, 1m (default 20s)")
    parser.add_argument("--users", type=int, default=20, metavar="N", help="concurrent SMTP users (default 20)")
    parser.add_argument("--spawn-rate", type=float, default=10.0, metavar="N", help="users started per second (default 10)")


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
        raise CommandError(f"--duration {args.duration!r}: {error}") from None
    if duration <= 0 or args.users < 1 or args.spawn_rate <= 0:
        raise CommandError("--duration, --users and --spawn-rate must be positive")
    try:
        folder = new_results_folder(args.out, "demo")
    except ResultsError as error:
        raise CommandError(str(error)) from None

    sink = SinkServer("127.0.0.1:0").start()
    print(f"loadkit demo: sink listening on {sink.url}; {args.users} users for {duration}s -> {folder}")
    load = HeadlessRun([DemoSender], sink.url, csv_prefix=str(folder / CSV_PREFIX))
    recording = RunRecorder(load.environment, folder, RequestRecorder()).start()  # metrics.jsonl, events, errors
    try:
        load.run(args.users, args.spawn_rate, duration=duration, on_tick=_progress(duration))
    finally:
        sink.stop()
        recording.stop(locust_total=load.stats.total)
    print()
    total = load.stats.total
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
    )
    print(
        f"loadkit demo: Locust counted {total.num_requests} messages ({total.num_failures} failed); "
        f"the sink received {sink.stats.messages}"
    )
    from loadkit.report import build_report  # pandas and matplotlib only once the load is over

    report = build_report(folder)
    print(f"loadkit demo: report written to {report}")
    return 0 if total.num_failures == 0 else 1


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
