"""loadkit's benchmark: `loadkit source` and `loadkit sink` against Postfix's pair.

    python bench/run.py [--quick] [--runs N] [--messages N] [--messages-new N]
                        [--messages-tls N] [--modes reuse,new,lmtp,tls-reuse,tls-new]
                        [--sessions N] [--length BYTES] [--json PATH] [--strict]

Everything runs on this machine, on 127.0.0.1, in one go:

client side   smtp-source, `loadkit source` (same flags) and a plain Locust user
              on smtplib (bench/smtplib_locustfile.py), each sending to a fresh
              Postfix smtp-sink;
sink side     smtp-source sending to a fresh smtp-sink and to a fresh
              `loadkit sink`.

Each pairing runs reusing connections (``-d``, mode reuse) and with a new
connection per message (mode new). Two more client-side modes:

lmtp          ``smtp-source -L -d`` and ``loadkit source -L -d`` into a fresh
              ``smtp-sink -L``: its ratio should stay within 10% of reuse's;
tls-reuse,    ``loadkit source --starttls`` against its own plain path, both
tls-new       into a fresh `loadkit sink` (which offers STARTTLS with a
              self-signed certificate); smtp-source has no TLS, so the ratio
              is TLS / plain, and tls-new (one handshake per message) gives
              the handshake's CPU cost per connection, client and sink.

A measurement is the wall-clock time of the whole client process,
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

# (side, mode) -> least ratio to the baseline: the Postfix program, or loadkit's own plain path for TLS
GOALS = {
    ("client", "reuse"): 1.00,
    ("client", "new"): 0.80,
    ("client", "tls-reuse"): 0.90,
    ("sink", "reuse"): 0.80,
    ("sink", "new"): 0.60,
}
LMTP_GOAL = 0.90  # the LMTP ratio over the reuse ratio: LMTP costs at most 10% more
MODES = ("reuse", "new", "lmtp", "tls-reuse", "tls-new")
SINK_MODES = ("reuse", "new")  # the sink side runs only these
TLS_MODES = ("tls-reuse", "tls-new")
REUSING = ("reuse", "lmtp", "tls-reuse")  # modes that send with -d
MODE_TITLES = {"reuse": "reuse (-d)", "new": "new connection", "lmtp": "LMTP (-L -d)",
               "tls-reuse": "STARTTLS, reuse", "tls-new": "STARTTLS, new conn."}
TLS_CLIENT = "loadkit source --starttls"


class BenchError(Exception):
    """A run that failed or sent the wrong count: the numbers would be meaningless."""


@dataclass
class Pairing:
    """One client against one server, in one mode."""

    client: str  # "smtp-source", "loadkit source", "loadkit source --starttls", "locust+smtplib"
    server: str  # "smtp-sink", "loadkit sink"
    mode: str  # one of MODES
    messages: int
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)  # user + system of the client process
    server_cpu_seconds: list[float] = field(default_factory=list)  # user + system of the server process
    # loadkit source's own clock, from its summary line: the run without the interpreter's and
    # Locust's start-up (about 0.7 s of imports); smtp-source's start-up is a millisecond
    sending_seconds: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.client} -> {self.server}, {self.mode}"

    @property
    def rate(self) -> float:
        """Median msgs/s."""
        return self.messages / statistics.median(self.seconds)

    @property
    def sending_rate(self) -> float | None:
        """Median msgs/s by loadkit source's own clock (None for the other clients)."""
        return self.messages / statistics.median(self.sending_seconds) if self.sending_seconds else None

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

    def __init__(self, kind: str, programs: dict, workdir: Path, timeout: float, lmtp: bool = False):
        self.kind = kind
        self.lmtp = lmtp
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
            command += ["-L"] if self.lmtp else []
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

    def check_count(self, expected: int, tls_sessions: tuple[int, int] = (0, 0)) -> None:
        """loadkit sink counts what it accepted, and its TLS sessions (least, most); smtp-sink has
        no count without its slow -c."""
        if self.kind != "loadkit sink":
            return
        try:
            stats = json.loads(self.stats_path.read_text())
        except (OSError, ValueError) as error:
            raise BenchError(f"loadkit sink wrote no usable --stats-json: {error}") from None
        if stats.get("messages") != expected:
            raise BenchError(f"loadkit sink accepted {stats.get('messages')} messages, expected {expected}")
        tls = stats.get("tls", {})
        least, most = tls_sessions
        if tls.get("failures") or not least <= tls.get("sessions", 0) <= most:
            raise BenchError(f"loadkit sink counted {tls.get('sessions')} TLS sessions ({tls.get('failures')} "
                             f"failed), expected {least}..{most}")


# -- one measurement --------------------------------------------------------------


def client_command(pairing: Pairing, programs: dict, port: int, args) -> tuple[list[str], dict | None]:
    flags = ["-s", str(args.sessions), "-m", str(pairing.messages), "-l", str(args.length)]
    if pairing.mode in REUSING:
        flags.append("-d")
    if pairing.mode == "lmtp":
        flags.append("-L")
    if pairing.client == "smtp-source":
        return [programs["smtp-source"], *flags, f"127.0.0.1:{port}"], None
    if pairing.client == TLS_CLIENT:
        flags += ["--starttls", "--tls-no-verify"]
    if pairing.client.startswith("loadkit source"):
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


def check_client(pairing: Pairing, result: subprocess.CompletedProcess) -> float | None:
    """Raise BenchError unless the client sent every message; loadkit source's own seconds."""
    output = result.stdout.decode(errors="replace")
    errors = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        tail = (errors.strip() or output.strip()).splitlines()[-3:]
        raise BenchError(f"{pairing.key}: exit status {result.returncode}: {' | '.join(tail)}")
    n = pairing.messages
    if pairing.client.startswith("loadkit source"):
        match = re.search(r"loadkit source: (\d+) messages \((\d+) delivered, (\d+) failed\).* in ([\d.]+) s", output)
        if not match or match.groups()[:3] != (str(n), str(n), "0"):
            raise BenchError(f"{pairing.key}: expected {n} messages delivered, got: {output.strip()[:200]!r}")
        return float(match.group(4))
    if pairing.client == "locust+smtplib":
        match = re.search(r"smtplib bench: (\d+) delivered, (\d+) failed", output)
        if not match or match.groups() != (str(n), "0"):
            raise BenchError(f"{pairing.key}: expected {n} messages delivered, got: {output.strip()[-200:]!r}")
    elif "fatal" in errors or "error" in errors.lower():
        raise BenchError(f"{pairing.key}: smtp-source complained: {errors.strip()[:200]}")
    return None


def measure(pairing: Pairing, programs: dict, workdir: Path, args) -> float:
    server = Server(pairing.server, programs, workdir, args.timeout, lmtp=pairing.mode == "lmtp")
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
        sending_seconds = check_client(pairing, result)
    finally:
        server.stop(args.timeout)
    stopped = resource.getrusage(resource.RUSAGE_CHILDREN)  # now with the server's time too
    server.check_count(pairing.messages, tls_sessions(pairing, args.sessions))
    pairing.seconds.append(seconds)
    if sending_seconds:
        pairing.sending_seconds.append(sending_seconds)
    pairing.cpu_seconds.append(_cpu(after) - _cpu(before))
    pairing.server_cpu_seconds.append(_cpu(stopped) - _cpu(after))
    return seconds


def tls_sessions(pairing: Pairing, sessions: int) -> tuple[int, int]:
    """How many TLS sessions the sink should count (least, most): one per message with a new
    connection each; with -d at least one and at most one per session (or per message if fewer)."""
    if pairing.client != TLS_CLIENT:
        return 0, 0
    if pairing.mode == "tls-new":
        return pairing.messages, pairing.messages
    return 1, min(sessions, pairing.messages)


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


# -- the whole benchmark ----------------------------------------------------------


def pairings_for(args) -> list[Pairing]:
    pairings = []
    for mode in args.modes:
        if mode in TLS_MODES:
            if "client" in args.sides:
                count = args.messages if mode == "tls-reuse" else args.messages_tls
                pairings.append(Pairing("loadkit source", "loadkit sink", mode, count))
                pairings.append(Pairing(TLS_CLIENT, "loadkit sink", mode, count))
            continue
        if mode not in SINK_MODES and "client" not in args.sides:
            continue
        count = args.messages_new if mode == "new" else args.messages
        pairings.append(Pairing("smtp-source", "smtp-sink", mode, count))
        if "client" in args.sides:
            pairings.append(Pairing("loadkit source", "smtp-sink", mode, count))
        if "sink" in args.sides and mode in SINK_MODES:
            pairings.append(Pairing("smtp-source", "loadkit sink", mode, count))
        if "client" in args.sides and not args.skip_smtplib and mode in SINK_MODES:
            smtplib_count = args.smtplib_messages if mode == "reuse" else args.smtplib_messages_new
            pairings.append(Pairing("locust+smtplib", "smtp-sink", mode, smtplib_count))
    return pairings


def baseline(pairings: list[Pairing], mode: str) -> Pairing:
    """What a mode's ratios divide by: smtp-source into smtp-sink, or loadkit's plain path for TLS."""
    client, server = ("loadkit source", "loadkit sink") if mode in TLS_MODES else ("smtp-source", "smtp-sink")
    return next(p for p in pairings if p.mode == mode and p.client == client and p.server == server)


def side_of(pairing: Pairing) -> str | None:
    """Which of loadkit's sides a pairing measures (None for a baseline or a reference)."""
    if pairing.mode in TLS_MODES:
        return "client" if pairing.client == TLS_CLIENT else None
    if pairing.client == "loadkit source":
        return "client"
    return "sink" if pairing.server == "loadkit sink" else None


def find(pairings: list[Pairing], client: str, server: str, mode: str) -> Pairing | None:
    return next((p for p in pairings if (p.client, p.server, p.mode) == (client, server, mode)), None)


def ratio_of(pairings: list[Pairing], pairing: Pairing) -> float:
    return pairing.rate / baseline(pairings, pairing.mode).rate


def lmtp_verdict(pairings: list[Pairing]) -> dict | None:
    """The LMTP ratio against the plain (reuse) ratio: goal 3 asks for it within 10%."""
    lmtp = find(pairings, "loadkit source", "smtp-sink", "lmtp")
    plain = find(pairings, "loadkit source", "smtp-sink", "reuse")
    if lmtp is None or plain is None:
        return None
    share = ratio_of(pairings, lmtp) / ratio_of(pairings, plain)
    # The same comparison in CPU per message (the steadier figure on a busy machine): per-core ratios
    lmtp_base, plain_base = baseline(pairings, "lmtp"), baseline(pairings, "reuse")
    per_core = (lmtp_base.cpu_per_message_us / lmtp.cpu_per_message_us) / (
        plain_base.cpu_per_message_us / plain.cpu_per_message_us)
    return {"lmtp_ratio": round(ratio_of(pairings, lmtp), 3), "reuse_ratio": round(ratio_of(pairings, plain), 3),
            "lmtp_over_reuse": round(share, 3), "lmtp_over_reuse_per_core": round(per_core, 3),
            "goal": LMTP_GOAL, "met": share >= LMTP_GOAL}


def handshake_cost(pairings: list[Pairing]) -> dict | None:
    """CPU a STARTTLS handshake adds per connection: tls-new sends one message per connection, so
    the difference in CPU per message between its TLS and plain runs is the handshake (and the
    encryption of one message, a few µs at 5 KiB)."""
    tls = find(pairings, TLS_CLIENT, "loadkit sink", "tls-new")
    plain = find(pairings, "loadkit source", "loadkit sink", "tls-new")
    if tls is None or plain is None:
        return None
    return {"client_us": round(tls.cpu_per_message_us - plain.cpu_per_message_us, 1),
            "sink_us": round(tls.server_cpu_per_message_us - plain.server_cpu_per_message_us, 1)}


def results(pairings: list[Pairing], args) -> dict:
    rows = []
    goals = []
    for pairing in pairings:
        ratio = ratio_of(pairings, pairing)
        rows.append({**asdict(pairing), "rate": round(pairing.rate, 1), "ratio": round(ratio, 3),
                     "cpu_per_message_us": round(pairing.cpu_per_message_us, 1),
                     "server_cpu_per_message_us": round(pairing.server_cpu_per_message_us, 1),
                     "sending_rate": pairing.sending_rate and round(pairing.sending_rate, 1),
                     "sending_ratio": pairing.sending_rate and round(
                         pairing.sending_rate / baseline(pairings, pairing.mode).rate, 3)})
        side = side_of(pairing)
        goal = GOALS.get((side, pairing.mode)) if side else None
        if side:
            goals.append({"side": side, "mode": pairing.mode, "ratio": round(ratio, 3), "goal": goal,
                          "met": goal is None or ratio >= goal})
    lmtp = lmtp_verdict(pairings)
    if lmtp:
        goals.append({"side": "client", "mode": "lmtp/reuse", "ratio": lmtp["lmtp_over_reuse"],
                      "goal": LMTP_GOAL, "met": lmtp["met"]})
    return {
        "settings": {"sessions": args.sessions, "length": args.length, "runs": args.runs,
                     "host": socket.gethostname(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                     "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "measurements": rows,
        "goals": goals,
        "lmtp": lmtp,
        "tls_handshake_cpu_us": handshake_cost(pairings),
    }


def print_table(pairings: list[Pairing], args) -> None:
    print(f"\n{args.length}-byte messages, {args.sessions} sessions, 127.0.0.1, median of {args.runs} run(s); "
          "msgs/s = messages / wall time of the client process; CPU = user+system per message, start-up in;\n"
          "after start-up: by loadkit source's own clock (its summary line), against the same baseline")
    print(f"\n{'mode':<20} {'client -> server':<48} {'msgs/s':>8} {'ratio':>6}  {'CPU client':>10} "
          f"{'CPU server':>10}  {'goal':<11} after start-up")
    for mode in args.modes:
        if not any(p.mode == mode for p in pairings):
            continue
        base_rate = baseline(pairings, mode).rate
        for pairing in (p for p in pairings if p.mode == mode):
            side = side_of(pairing)
            goal = GOALS.get((side, mode)) if side else None
            ratio = ratio_of(pairings, pairing)
            verdict = "" if goal is None else f"{goal:.2f} {'ok' if ratio >= goal else 'MISSED'}"
            sending = pairing.sending_rate
            steady = "" if sending is None else f"{sending:,.0f} msgs/s {sending / base_rate:.2f}x"
            print(f"{MODE_TITLES[mode]:<20} {pairing.client + ' -> ' + pairing.server:<48} {pairing.rate:>8,.0f} "
                  f"{ratio:5.2f}x  {pairing.cpu_per_message_us:7.1f} us {pairing.server_cpu_per_message_us:7.1f} us  "
                  f"{verdict:<11} {steady}")
    lmtp = lmtp_verdict(pairings)
    if lmtp:
        print(f"\nLMTP: {lmtp['lmtp_ratio']:.2f}x smtp-source -L against {lmtp['reuse_ratio']:.2f}x for SMTP: "
              f"{lmtp['lmtp_over_reuse']:.2f} of the plain ratio (goal {LMTP_GOAL:.2f}: "
              f"{'ok' if lmtp['met'] else 'MISSED'}); per core (CPU per message) "
              f"{lmtp['lmtp_over_reuse_per_core']:.2f} of it")
    cost = handshake_cost(pairings)
    if cost:
        print(f"STARTTLS handshake, CPU per connection: client {cost['client_us'] / 1000:.2f} ms, "
              f"sink {cost['sink_us'] / 1000:.2f} ms (tls-new minus its plain run, per message)")


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
    add("--messages-tls", type=int, default=5000, help="messages per run of tls-new, one handshake each (default 5000)")
    add("--smtplib-messages", type=int, default=10000, help="the smtplib user's count, reusing (default 10000)")
    add("--smtplib-messages-new", type=int, default=5000, help="the smtplib user's count, new connections (default 5000)")
    add("--sessions", type=int, default=20, help="sessions in parallel, -s (default 20)")
    add("--length", type=int, default=5120, help="body bytes, -l (default 5120)")
    add("--runs", type=int, default=3, help="repetitions of each measurement; the median is reported (default 3)")
    add("--timeout", type=float, default=300.0, help="seconds allowed to any one process (default 300)")
    add("--sides", type=_choices("client", "sink"), default=("client", "sink"),
        help="which sides to measure: client, sink or client,sink (default both)")
    add("--modes", type=_choices(*MODES), default=MODES,
        help=f"comma-separated, from {','.join(MODES)} (default all; the sink side runs reuse and new)")
    add("--skip-smtplib", action="store_true", help="leave out the Locust + smtplib reference")
    add("--quick", action="store_true", help="small counts and one run: a smoke test of the benchmark")
    add("--json", metavar="PATH", help="write the results there")
    add("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.messages_new = min(args.messages, 5000), min(args.messages_new, 2000)
        args.messages_tls = min(args.messages_tls, 500)
        args.smtplib_messages, args.smtplib_messages_new = min(args.smtplib_messages, 2000), min(
            args.smtplib_messages_new, 1000)
        args.runs = 1
    for name in ("messages", "messages_new", "messages_tls", "smtplib_messages", "smtplib_messages_new", "sessions", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.length < 0 or args.timeout <= 0:
        parser.error("--length must be 0 or more and --timeout more than 0")
    return args


def run_pairings(args) -> list[Pairing]:
    """Every pairing of `args`, measured --runs times, interleaved; BenchError on a bad run."""
    programs = {name: find_program(name) for name in ("smtp-source", "smtp-sink")}
    pairings = pairings_for(args)
    with tempfile.TemporaryDirectory(prefix="loadkit-bench-") as workdir:
        for run in range(args.runs):
            # Rotate the order every run, so no pairing always follows the same one.
            shift = run % len(pairings)
            for pairing in pairings[shift:] + pairings[:shift]:
                seconds = measure(pairing, programs, Path(workdir), args)
                print(f"run {run + 1}/{args.runs}  {pairing.key:<58} {pairing.messages:>7} msgs "
                      f"{seconds:7.2f} s  {pairing.messages / seconds:>8,.0f} msgs/s", flush=True)
    return pairings


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        pairings = run_pairings(args)
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
