"""loadkit's benchmark: `loadkit source` and `loadkit sink` against Postfix's pair.

    python bench/run.py [--quick] [--runs N] [--messages N] [--messages-new N]
                        [--sessions N] [--length BYTES] [--json PATH] [--strict]

Everything runs on this machine, on 127.0.0.1, in one go:

client side   smtp-source, `loadkit source` (same flags) and a plain Locust user
              on smtplib (bench/smtplib_locustfile.py), each sending to a fresh
              Postfix smtp-sink;
sink side     smtp-source sending to a fresh smtp-sink and to a fresh
              `loadkit sink`.

Each pairing runs reusing connections (``-d``) and with a new connection per
message. A measurement is the wall-clock time of the whole client process,
start-up included, for a fixed message count: msgs/s = count / seconds. Every
measurement is repeated (--runs, median reported), and the runs are
interleaved, so that noise on the machine hits both sides of a ratio alike.
smtp-source -> smtp-sink is the baseline of both sides.

Counts are checked and a mismatch ends the benchmark with an error: loadkit
source's summary line, the smtplib user's closing line, loadkit sink's
--stats-json, and the exit status of every client.

The table gives msgs/s, the ratio to smtp-source (client side) or smtp-sink
(sink side), and the goals. Exit status: 0 measured (goals met or not,
unless --strict), 1 a goal missed with --strict, 2 a failed or miscounted run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "smtplib_locustfile.py"
PEER_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")

# (side, mode) -> least ratio to the Postfix program
GOALS = {
    ("client", "reuse"): 0.60,
    ("client", "new"): 0.45,
    ("sink", "reuse"): 0.80,
    ("sink", "new"): 0.60,
}
MODES = ("reuse", "new")
MODE_TITLES = {"reuse": "reuse (-d)", "new": "new connection"}


class BenchError(Exception):
    """A run that failed or sent the wrong count: the numbers would be meaningless."""


@dataclass
class Pairing:
    """One client against one server, in one mode."""

    client: str  # "smtp-source", "loadkit source", "locust+smtplib"
    server: str  # "smtp-sink", "loadkit sink"
    mode: str  # "reuse" or "new"
    messages: int
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)  # user + system of the client process
    server_cpu_seconds: list[float] = field(default_factory=list)  # user + system of the server process

    @property
    def key(self) -> str:
        return f"{self.client} -> {self.server}, {self.mode}"

    @property
    def rate(self) -> float:
        """Median msgs/s."""
        return self.messages / statistics.median(self.seconds)

    @property
    def cpu_per_message_us(self) -> float:
        return statistics.median(self.cpu_seconds) / self.messages * 1e6

    @property
    def server_cpu_per_message_us(self) -> float:
        return statistics.median(self.server_cpu_seconds) / self.messages * 1e6


# -- programs ---------------------------------------------------------------------


def find_program(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(PEER_DIRS))
    if not path:
        raise BenchError(f"{name} is not installed (apt-get install postfix provides smtp-source and smtp-sink)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise BenchError(f"the server exited with status {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout}s") from None
            time.sleep(0.02)


def child_environment() -> dict:
    """The repository's loadkit first on the path, whether or not it is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class Server:
    """A fresh sink for one measurement; stopped (and its count checked) afterwards."""

    def __init__(self, kind: str, programs: dict, workdir: Path, timeout: float):
        self.kind = kind
        self.stats_path = workdir / "sink-stats.json"
        self.stats_path.unlink(missing_ok=True)
        # A file, not a pipe nobody reads: a chatty server must never block on its stderr.
        self.errors = open(workdir / "sink-stderr.txt", "w+b")
        self.process = None
        try:
            self._start(programs, workdir, timeout)
        except BaseException:
            if self.process is not None:
                self.process.kill()
                self.process.wait(timeout)
            self.errors.close()
            raise

    def _start(self, programs: dict, workdir: Path, timeout: float) -> None:
        if self.kind == "smtp-sink":
            self.port = free_port()
            command = [programs["smtp-sink"]]
            if os.geteuid() == 0:
                command += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
            # No -c: smtp-sink's counters slow it down a lot.
            command += [f"127.0.0.1:{self.port}", "256"]
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.errors)
            try:
                wait_for_port(self.port, self.process, timeout)
            except BenchError as error:
                raise BenchError(f"smtp-sink: {error}: {self.error_text()}") from None
        else:
            command = [sys.executable, "-m", "loadkit", "sink", "--stats-json", str(self.stats_path), "127.0.0.1:0"]
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=self.errors, env=child_environment(), cwd=workdir
            )
            self.port = self._announced_port(timeout)

    def _announced_port(self, timeout: float) -> int:
        """loadkit sink says where it listens in its first line."""
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                raise BenchError(f"loadkit sink did not say where it listens within {timeout}s")
            chunk = os.read(self.process.stdout.fileno(), 1)
            if not chunk:
                raise BenchError(f"loadkit sink exited: {self.error_text()}")
            line += chunk
        match = re.search(rb"listening on smtp://127\.0\.0\.1:(\d+)", line)
        if not match:
            raise BenchError(f"unexpected first line from loadkit sink: {line!r}")
        return int(match.group(1))

    def error_text(self) -> str:
        self.errors.seek(0)
        return self.errors.read()[-500:].decode(errors="replace").strip()

    def stop(self, timeout: float) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
            raise BenchError(f"{self.kind} did not stop within {timeout}s of SIGTERM") from None
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.errors.close()

    def check_count(self, expected: int) -> None:
        """loadkit sink counts what it accepted; smtp-sink has no count without its slow -c."""
        if self.kind != "loadkit sink":
            return
        try:
            stats = json.loads(self.stats_path.read_text())
        except (OSError, ValueError) as error:
            raise BenchError(f"loadkit sink wrote no usable --stats-json: {error}") from None
        if stats.get("messages") != expected:
            raise BenchError(f"loadkit sink accepted {stats.get('messages')} messages, expected {expected}")


# -- one measurement --------------------------------------------------------------


def client_command(pairing: Pairing, programs: dict, port: int, args) -> tuple[list[str], dict | None]:
    flags = ["-s", str(args.sessions), "-m", str(pairing.messages), "-l", str(args.length)]
    if pairing.mode == "reuse":
        flags.append("-d")
    if pairing.client == "smtp-source":
        return [programs["smtp-source"], *flags, f"127.0.0.1:{port}"], None
    if pairing.client == "loadkit source":
        return [sys.executable, "-m", "loadkit", "source", *flags, f"127.0.0.1:{port}"], child_environment()
    env = child_environment()
    env.update(
        BENCH_MESSAGES=str(pairing.messages),
        BENCH_REUSE="1" if pairing.mode == "reuse" else "0",
        BENCH_LENGTH=str(args.length),
    )
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(args.sessions), "-r", str(args.sessions), "-H", f"smtp://127.0.0.1:{port}",
    ]
    return command, env


def check_client(pairing: Pairing, result: subprocess.CompletedProcess) -> None:
    output = result.stdout.decode(errors="replace")
    errors = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        tail = (errors.strip() or output.strip()).splitlines()[-3:]
        raise BenchError(f"{pairing.key}: exit status {result.returncode}: {' | '.join(tail)}")
    n = pairing.messages
    if pairing.client == "loadkit source":
        match = re.search(r"loadkit source: (\d+) messages \((\d+) delivered, (\d+) failed\)", output)
        if not match or match.groups() != (str(n), str(n), "0"):
            raise BenchError(f"{pairing.key}: expected {n} messages delivered, got: {output.strip()[:200]!r}")
    elif pairing.client == "locust+smtplib":
        match = re.search(r"smtplib bench: (\d+) delivered, (\d+) failed", output)
        if not match or match.groups() != (str(n), "0"):
            raise BenchError(f"{pairing.key}: expected {n} messages delivered, got: {output.strip()[-200:]!r}")
    elif "fatal" in errors or "error" in errors.lower():
        raise BenchError(f"{pairing.key}: smtp-source complained: {errors.strip()[:200]}")


def measure(pairing: Pairing, programs: dict, workdir: Path, args) -> float:
    server = Server(pairing.server, programs, workdir, args.timeout)
    try:
        command, env = client_command(pairing, programs, server.port, args)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        try:
            result = subprocess.run(command, capture_output=True, env=env, cwd=workdir, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{pairing.key}: no result within {args.timeout}s") from None
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        check_client(pairing, result)
    finally:
        server.stop(args.timeout)
    stopped = resource.getrusage(resource.RUSAGE_CHILDREN)  # now with the server's time too
    server.check_count(pairing.messages)
    pairing.seconds.append(seconds)
    pairing.cpu_seconds.append(_cpu(after) - _cpu(before))
    pairing.server_cpu_seconds.append(_cpu(stopped) - _cpu(after))
    return seconds


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


# -- the whole benchmark ----------------------------------------------------------


def pairings_for(args) -> list[Pairing]:
    pairings = []
    for mode in args.modes:
        count = args.messages if mode == "reuse" else args.messages_new
        pairings.append(Pairing("smtp-source", "smtp-sink", mode, count))
        if "client" in args.sides:
            pairings.append(Pairing("loadkit source", "smtp-sink", mode, count))
        if "sink" in args.sides:
            pairings.append(Pairing("smtp-source", "loadkit sink", mode, count))
        if "client" in args.sides and not args.skip_smtplib:
            smtplib_count = args.smtplib_messages if mode == "reuse" else args.smtplib_messages_new
            pairings.append(Pairing("locust+smtplib", "smtp-sink", mode, smtplib_count))
    return pairings


def baseline(pairings: list[Pairing], mode: str) -> Pairing:
    return next(p for p in pairings if p.mode == mode and p.client == "smtp-source" and p.server == "smtp-sink")


def results(pairings: list[Pairing], args) -> dict:
    rows = []
    goals = []
    for pairing in pairings:
        base = baseline(pairings, pairing.mode)
        ratio = pairing.rate / base.rate
        rows.append({**asdict(pairing), "rate": round(pairing.rate, 1), "ratio": round(ratio, 3),
                     "cpu_per_message_us": round(pairing.cpu_per_message_us, 1),
                     "server_cpu_per_message_us": round(pairing.server_cpu_per_message_us, 1)})
        side = {"loadkit source": "client", "loadkit sink": "sink"}.get(
            pairing.client if pairing.client == "loadkit source" else pairing.server)
        if side:
            goal = GOALS[(side, pairing.mode)]
            goals.append({"side": side, "mode": pairing.mode, "ratio": round(ratio, 3), "goal": goal,
                          "met": ratio >= goal})
    return {
        "settings": {"sessions": args.sessions, "length": args.length, "runs": args.runs,
                     "host": socket.gethostname(), "cpus": os.cpu_count(),
                     "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "measurements": rows,
        "goals": goals,
    }


def print_table(pairings: list[Pairing], args) -> None:
    def cell(pairing: Pairing | None, goal: float | None) -> str:
        if pairing is None:
            return ""
        base = baseline(pairings, pairing.mode)
        if pairing is base:
            return f"{pairing.rate:>8,.0f}"
        ratio = pairing.rate / base.rate
        verdict = "" if goal is None else f"  goal {goal:.2f} {'ok' if ratio >= goal else 'MISSED'}"
        return f"{pairing.rate:>8,.0f}  {ratio:4.2f}x{verdict}"

    def find(client: str, server: str, mode: str) -> Pairing | None:
        return next((p for p in pairings if (p.client, p.server, p.mode) == (client, server, mode)), None)

    print(f"\n{args.length}-byte messages, {args.sessions} sessions, 127.0.0.1, median of {args.runs} run(s); "
          "msgs/s = messages / wall time of the client process")
    header = f"{'':<34}" + "".join(f"{MODE_TITLES[mode]:<36}" for mode in args.modes)
    for title, side, rows in (
        ("client side (server: smtp-sink)", "client",
         [("smtp-source", "smtp-sink"), ("loadkit source", "smtp-sink"), ("locust+smtplib", "smtp-sink")]),
        ("sink side (client: smtp-source)", "sink", [("smtp-sink", "smtp-sink"), ("loadkit sink", "loadkit sink")]),
    ):
        if side not in args.sides:
            continue
        print(f"\n{title}")
        print(header)
        for name, server in rows:
            client = "smtp-source" if side == "sink" else name
            cells = []
            for mode in args.modes:
                pairing = find(client, server, mode)
                goal = GOALS[(side, mode)] if name.startswith("loadkit") else None
                cells.append(f"{cell(pairing, goal):<36}")
            if any(c.strip() for c in cells):
                print(f"  {name:<32}" + "".join(cells))
    print("\nCPU time (user+system) per message, median, start-up included:")
    print(f"  {'':<46} {'client':>9} {'server':>9}")
    for pairing in pairings:
        print(f"  {pairing.key:<46} {pairing.cpu_per_message_us:6.1f} us {pairing.server_cpu_per_message_us:6.1f} us")


def _choices(*allowed):
    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        if not chosen or any(part not in allowed for part in chosen):
            raise argparse.ArgumentTypeError(f"{text!r}: use one or more of {', '.join(allowed)}, comma-separated")
        return chosen

    parse.__name__ = "list"
    return parse


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Benchmark loadkit source/sink against Postfix smtp-source/smtp-sink.")
    add = parser.add_argument
    add("--messages", type=int, default=50000, help="messages per run reusing connections (default 50000)")
    add("--messages-new", type=int, default=20000, help="messages per run with a new connection each (default 20000)")
    add("--smtplib-messages", type=int, default=10000, help="the smtplib user's count, reusing (default 10000)")
    add("--smtplib-messages-new", type=int, default=5000, help="the smtplib user's count, new connections (default 5000)")
    add("--sessions", type=int, default=20, help="sessions in parallel, -s (default 20)")
    add("--length", type=int, default=5120, help="body bytes, -l (default 5120)")
    add("--runs", type=int, default=3, help="repetitions of each measurement; the median is reported (default 3)")
    add("--timeout", type=float, default=300.0, help="seconds allowed to any one process (default 300)")
    add("--sides", type=_choices("client", "sink"), default=("client", "sink"),
        help="which sides to measure: client, sink or client,sink (default both)")
    add("--modes", type=_choices(*MODES), default=MODES,
        help="reuse, new or reuse,new (default both)")
    add("--skip-smtplib", action="store_true", help="leave out the Locust + smtplib reference")
    add("--quick", action="store_true", help="small counts and one run: a smoke test of the benchmark")
    add("--json", metavar="PATH", help="write the results there")
    add("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.messages_new = min(args.messages, 5000), min(args.messages_new, 2000)
        args.smtplib_messages, args.smtplib_messages_new = min(args.smtplib_messages, 2000), min(
            args.smtplib_messages_new, 1000)
        args.runs = 1
    for name in ("messages", "messages_new", "smtplib_messages", "smtplib_messages_new", "sessions", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.length < 0 or args.timeout <= 0:
        parser.error("--length must be 0 or more and --timeout more than 0")
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        programs = {name: find_program(name) for name in ("smtp-source", "smtp-sink")}
        pairings = pairings_for(args)
        with tempfile.TemporaryDirectory(prefix="loadkit-bench-") as workdir:
            for run in range(args.runs):
                # Rotate the order every run, so no pairing always follows the same one.
                shift = run % len(pairings)
                for pairing in pairings[shift:] + pairings[:shift]:
                    seconds = measure(pairing, programs, Path(workdir), args)
                    print(f"run {run + 1}/{args.runs}  {pairing.key:<46} {pairing.messages:>7} msgs "
                          f"{seconds:7.2f} s  {pairing.messages / seconds:>8,.0f} msgs/s", flush=True)
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    print_table(pairings, args)
    report = results(pairings, args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    missed = [g for g in report["goals"] if not g["met"]]
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
