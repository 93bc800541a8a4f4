"""loadkit's own latency overhead against a sink that delays on purpose.

    python bench/delay_overhead.py [--messages N] [--delay 5ms] [--length BYTES] [--runs N] [--json PATH]

A ``loadkit sink --delay data:DELAY`` waits DELAY before answering DATA, so a
message sent to it cannot take less than DELAY. What a client measures above
that is the overhead of the tools themselves (client, sink, loopback): the
number a user subtracts in their head when they read a latency. This prints
it, observed minus injected, at p50 and p99:

  loadkit source -d -s 1 -m N -l BYTES    its printed p50/p99, with the sink
                                          offering PIPELINING (the envelope
                                          and DATA in one round trip) and
                                          without it (``loadkit sink -p``);
  smtp-source -d -s 1 -m N -l BYTES       Postfix's client (no percentiles:
                                          its wall time / N, start-up included).

Each is run against a sink without the delay too (the baseline: the round
trips alone), and against the sink with it. Every run is checked: exit
status 0 and the sink's ``--stats-json`` counting exactly N messages.
Exit status: 0 measured, 2 a failed or miscounted run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
LATENCY_LINE = re.compile(r"latency ms: p50 ([0-9.]+)\s+p95 [0-9.]+\s+p99 ([0-9.]+)")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


class BenchError(Exception):
    """A run that failed or miscounted: its numbers would mean nothing."""


@dataclass
class Measure:
    client: str  # "loadkit source", "smtp-source"
    pipelining: bool
    delay_ms: float  # injected: 0 for the baseline
    p50_ms: float
    p99_ms: float | None  # None for smtp-source: a mean, no percentiles

    @property
    def overhead_p50(self) -> float:
        return self.p50_ms - self.delay_ms

    @property
    def overhead_p99(self) -> float | None:
        return None if self.p99_ms is None else self.p99_ms - self.delay_ms


def parse_delay_ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"bad delay {text!r}: use e.g. 5ms")
    return float(match.group(1)) * UNITS[match.group(2)]


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


class Sink:
    """`loadkit sink` on a free loopback port; `stop()` returns its --stats-json counters."""

    def __init__(self, folder: Path, options: list[str]):
        self.stats_path = folder / "sink-stats.json"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "sink", "--stats-json", str(self.stats_path), *options, "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(),
        )
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise BenchError(f"loadkit sink did not start: {line!r} {self.process.stderr.read()}")
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise BenchError("loadkit sink did not stop on SIGTERM") from None
        return json.loads(self.stats_path.read_text())


def measure(client: str, pipelining: bool, delay_ms: float, args, folder: Path) -> Measure:
    options = ["-p"] if not pipelining else []
    if delay_ms:
        options += ["--delay", f"data:{delay_ms}ms"]
    sink = Sink(folder, options)
    try:
        common = ["-d", "-s", "1", "-m", str(args.messages), "-l", str(args.length), f"127.0.0.1:{sink.port}"]
        if client == "smtp-source":
            started = time.perf_counter()
            result = subprocess.run([args.smtp_source, *common], capture_output=True, text=True, timeout=args.timeout)
            elapsed = time.perf_counter() - started
        else:
            result = subprocess.run([sys.executable, "-m", "loadkit", "source", *common],
                                    capture_output=True, text=True, timeout=args.timeout, env=environment())
    finally:
        stats = sink.stop()
    if result.returncode != 0:
        raise BenchError(f"{client} exited {result.returncode}: {result.stderr.strip()[-300:]}")
    if stats["messages"] != args.messages:
        raise BenchError(f"the sink counted {stats['messages']} messages from {client}, expected {args.messages}")
    if client == "smtp-source":
        return Measure(client, pipelining, delay_ms, elapsed * 1000 / args.messages, None)
    match = LATENCY_LINE.search(result.stdout)
    if not match:
        raise BenchError(f"no latency line from loadkit source: {result.stdout.strip()[-300:]}")
    return Measure(client, pipelining, delay_ms, float(match.group(1)), float(match.group(2)))


def median_measure(runs: list[Measure]) -> Measure:
    first = runs[0]
    p99s = [run.p99_ms for run in runs if run.p99_ms is not None]
    return Measure(first.client, first.pipelining, first.delay_ms,
                   statistics.median(run.p50_ms for run in runs), statistics.median(p99s) if p99s else None)


def pipelining_label(client: str, pipelining: bool) -> str:
    if client == "smtp-source":
        return "never"  # it waits for each reply, whatever the sink offers
    return "on" if pipelining else "off"


def table(results: list[Measure], delay_ms: float) -> str:
    def ms(value):
        return "-" if value is None else f"{value:.2f}"

    lines = [
        f"{'client':<16} {'pipelining':<11} {'no delay p50/p99':>17} "
        f"{f'delay {delay_ms:g} ms p50/p99':>22} {'overhead p50/p99':>17}",
    ]
    for client in ("loadkit source", "smtp-source"):
        for pipelining in (True, False):
            pair = [m for m in results if m.client == client and m.pipelining == pipelining]
            if len(pair) != 2:
                continue
            base, delayed = sorted(pair, key=lambda m: m.delay_ms)
            lines.append(
                f"{client:<16} {pipelining_label(client, pipelining):<11} "
                f"{ms(base.p50_ms) + ' / ' + ms(base.p99_ms):>17} "
                f"{ms(delayed.p50_ms) + ' / ' + ms(delayed.p99_ms):>22} "
                f"{ms(delayed.overhead_p50) + ' / ' + ms(delayed.overhead_p99):>17}"
            )
    lines.append("ms; overhead = observed minus injected; smtp-source: wall time / messages (a mean, start-up in)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per run, one session (default 500)")
    parser.add_argument("--delay", type=parse_delay_ms, default=5.0, help="the sink's delay before DATA's reply (5ms)")
    parser.add_argument("--length", type=int, default=1000, help="body bytes (default 1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement, median shown (default 3)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per client process (default 300)")
    parser.add_argument("--json", metavar="PATH", help="write every measurement there")
    args = parser.parse_args(argv)
    args.smtp_source = shutil.which("smtp-source", path=os.pathsep.join([*PEER_DIRS, os.environ.get("PATH", "")]))
    clients = ["loadkit source"] + (["smtp-source"] if args.smtp_source else [])
    if not args.smtp_source:
        print("smtp-source not found (Debian: apt-get install postfix): loadkit source only", file=sys.stderr)
    plan = [(client, pipelining, delay)
            for client in clients for pipelining in (True, False) for delay in (0.0, args.delay)
            if client == "loadkit source" or pipelining]  # smtp-source never pipelines
    runs: dict[tuple, list[Measure]] = {key: [] for key in plan}
    try:
        with tempfile.TemporaryDirectory(prefix="loadkit-delay-bench-") as folder:
            for _ in range(args.runs):  # interleaved: noise on the machine hits every cell alike
                for key in plan:
                    runs[key].append(measure(*key, args, Path(folder)))
    except (BenchError, subprocess.TimeoutExpired) as error:
        print(f"delay_overhead: error: {error}", file=sys.stderr)
        return 2
    results = [median_measure(found) for found in runs.values()]
    print(f"{args.messages} messages, one session, {args.length}-byte bodies, median of {args.runs} runs")
    print(table(results, args.delay))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump([asdict(m) for found in runs.values() for m in found], stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
