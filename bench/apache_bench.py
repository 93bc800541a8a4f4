"""loadkit's web path against Apache's `ab`, on the same real Apache, in one run.

    python bench/apache_bench.py [--quick] [--concurrency N] [--seconds S] [--requests N]
                                 [--path /1k.bin] [--modes keepalive,close]
                                 [--clients ab,plain,locust] [--runs N] [--json PATH]

The benchmark starts a loopback Apache (`loadkit.instances.Apache`, in a
temporary folder) and drives it in turn with

  ab       ``ab [-k] -c N -t S -n LARGE URL`` (apache2-utils);
  plain    a plain Locust FastHttpUser on the same path, without loadkit (no
           plugin: Locust's own statistics only), written to the temporary
           folder;
  locust   ``locust -f locustfiles/apache.py --headless -u N -r N -t S`` with
           every task of `WebUser` on the same path (a subclass written to the
           temporary folder), `KeepAliveWebUser` or `NewConnectionWebUser`:
           loadkit's metrics, results folder and all.

locust against plain is what loadkit's metrics cost on the HTTP path (the
goal: within 5%, per core and in requests/s). On a shared machine the
requests/s of runs made one after the other say more about the others' load
than about the clients (a client that gets half a core serves half the
requests), so the goal is judged on paired rounds: plain and locust run at
the same time, side by side under the same load, each asking for its own
copy of the file (/plain/1k.bin, /locust/1k.bin) so that Apache's access log
counts each one's requests in the common window; the ratio of a round is
locust's figure over plain's, and the goal takes the median of the rounds
(--runs of them). The interleaved runs' best (the highest requests/s and
requests per CPU second of each client's runs, the least disturbed) and
medians are printed beside it.

Both are single processes with N concurrent connections. Start-up is left
out: once Apache's counter moves, the benchmark waits a warm-up second, then
reads Apache's ``Total Accesses`` (mod_status) and the client's CPU time
(utime + stime from /proc) at the start and the end of a window, which lasts
``--seconds`` and until Apache has served ``--requests`` in it (50,000 by
default: over a few seconds, CPU per request moves with the machine's load
and with where the clients' once-a-second work falls). So both sides are
measured by the same server, the same way:

  requests/s            Apache's requests in the window / its wall seconds
  requests/s per core   the same requests / the client's CPU seconds in it

Each client runs until the window closes, then is stopped as a user would
stop it: Locust with SIGTERM (it stops its users, which finish their
request, and writes its statistics), ab with SIGINT (it prints its counts).

Counts are checked after each run: every request Apache logged must be one
the client counted (ab's "Complete requests", Locust's CSV), give or take
the N requests in flight when a client stops, and none may have failed.
Client and server share this machine's CPUs, so run it on a quiet machine.
Exit status: 0 measured, 2 a failed or miscounted run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from loadkit.instances import Apache, InstanceError, parse_server_status  # noqa: E402

LOCUSTFILES = REPO / "locustfiles"
CLIENTS = ("ab", "plain", "locust")
HTTP_GOAL = 0.95  # loadkit's user over the plain one: its metrics cost at most 5%
MODES = ("keepalive", "close")
LOCUST_USER = {"keepalive": "KeepAliveWebUser", "close": "NewConnectionWebUser"}
AB_MAX_REQUESTS = 100_000_000  # ab stops at -n, -t or SIGINT, whichever first: the window decides
WARM_UP = 1.0  # seconds after the first requests before the window opens
WINDOW_REQUESTS = 50_000  # least requests in a window (--requests)
POLL = 0.1  # seconds between reads of Apache's counter while a window is open
STOP_SIGNAL = {"ab": signal.SIGINT, "plain": signal.SIGTERM, "locust": signal.SIGTERM}
PAIRED = ("plain", "locust")  # run side by side for the metrics' overhead
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

ONE_PATH_LOCUSTFILE = """\
# Written by bench/apache_bench.py: locustfiles/apache.py's user on one path, as ab asks.
import apache  # locustfiles/ is on sys.path (PYTHONPATH)

class OnePath{mode}(apache.{user}):
    def get_one_path(self):
        self.fetch({path!r})

OnePath{mode}.tasks = [OnePath{mode}.get_one_path]  # in place of the weighted mix
"""

PLAIN_LOCUSTFILE = """\
# Written by bench/apache_bench.py: a plain FastHttpUser, no loadkit, on one path.
from locust import FastHttpUser, constant, task

class Plain{mode}(FastHttpUser):
    wait_time = constant(0)
    if {close!r}:
        default_headers = {{"Connection": "close"}}

    @task
    def get_one_path(self):
        self.client.get({path!r}, name={path!r})
"""
STOP_TIMEOUT = "10"  # seconds: as locustfiles/apache.py, users finish their request, so the counts agree


class BenchError(Exception):
    """A run that failed or miscounted: its numbers would mean nothing."""


@dataclass
class Measure:
    client: str
    mode: str
    rates: list[float] = field(default_factory=list)  # requests/s in the window
    per_core: list[float] = field(default_factory=list)  # requests per client CPU second in the window
    requests: list[int] = field(default_factory=list)  # requests in the window

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def rate_per_core(self) -> float:
        return statistics.median(self.per_core)

    @property
    def best_rate(self) -> float:
        return max(self.rates)

    @property
    def best_per_core(self) -> float:
        return max(self.per_core)


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def total_accesses(apache: Apache) -> int:
    with urllib.request.urlopen(apache.status_url, timeout=10) as response:
        return parse_server_status(response.read().decode())["Total Accesses"]


def logged_requests(apache: Apache, path: str) -> int:
    marker = f'"GET {path} '
    with open(apache.access_log_path) as log:
        return sum(marker in line for line in log)


def paired_path(client: str, path: str) -> str:
    """The copy of `path` that `client` asks for in a paired round, so that Apache's log tells the two apart."""
    return f"/{client}{path}"


def copy_for_pairs(apache: Apache, path: str) -> None:
    """One copy of the file per paired client, the same bytes and type (their folder sets the name apart)."""
    for client in PAIRED:
        copy = apache.docroot / paired_path(client, path).lstrip("/")
        copy.parent.mkdir(exist_ok=True)
        copy.parent.chmod(0o755)
        shutil.copyfile(apache.docroot / path.lstrip("/"), copy)
        copy.chmod(0o644)


class LogCounter:
    """GETs of each path in Apache's access log from the end it had when opened, read as the log grows."""

    def __init__(self, apache: Apache, paths):
        self.handle = open(apache.access_log_path, "rb")
        self.handle.seek(0, os.SEEK_END)
        self.markers = {path: f'"GET {path} '.encode() for path in paths}
        self.counts = dict.fromkeys(self.markers, 0)
        self._partial = b""  # a line Apache has not finished writing

    def read(self) -> dict[str, int]:
        data = self._partial + self.handle.read()
        whole = data.rfind(b"\n") + 1
        lines, self._partial = data[:whole], data[whole:]
        for path, marker in self.markers.items():
            self.counts[path] += lines.count(marker)
        return dict(self.counts)

    def close(self) -> None:
        self.handle.close()


def client_command(client: str, mode: str, apache: Apache, args, workdir: Path,
                   path: str | None = None) -> tuple[list[str], dict]:
    seconds = str(math.ceil(args.timeout))  # an upper bound: the client is stopped once its window closes
    path = path or args.path
    if client == "ab":
        keep_alive = ["-k"] if mode == "keepalive" else []
        return [shutil.which("ab") or "/usr/bin/ab", *keep_alive, "-c", str(args.concurrency), "-t", seconds,
                "-n", str(AB_MAX_REQUESTS), apache.base_url + path], dict(os.environ)
    common = ["-H", apache.base_url, "--headless", "-u", str(args.concurrency), "-r", str(args.concurrency),
              "-t", f"{seconds}s", "--only-summary"]
    if client == "plain":
        locustfile = workdir / f"plain_{mode}.py"
        locustfile.write_text(PLAIN_LOCUSTFILE.format(mode=mode.title(), close=mode == "close", path=path))
        return [sys.executable, "-m", "locust", "-f", str(locustfile), *common, "--stop-timeout", STOP_TIMEOUT,
                "--json-file", str(plain_stats_prefix(workdir, mode))], dict(os.environ)
    locustfile = workdir / f"one_path_{mode}.py"
    locustfile.write_text(ONE_PATH_LOCUSTFILE.format(mode=mode.title(), user=LOCUST_USER[mode], path=path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LOCUSTFILES), str(REPO), os.environ.get("PYTHONPATH", "")])}
    return [sys.executable, "-m", "locust", "-f", str(locustfile), *common,
            "--results", str(results_parent(workdir, mode))], env


def results_parent(workdir: Path, mode: str) -> Path:
    return workdir / f"results-{mode}"


def plain_stats_prefix(workdir: Path, mode: str) -> Path:
    """Locust's --json-file, written once every user has stopped (its CSV lags by up to a second)."""
    return workdir / f"plain-{mode}"


def client_count(client: str, mode: str, output: str, workdir: Path) -> tuple[int, int]:
    """(requests the client completed, failed) from its own report (Locust's: its results folder's CSV)."""
    if client == "ab":
        complete = re.search(r"Complete requests:\s+(\d+)", output)
        failed = re.search(r"Failed requests:\s+(\d+)", output)
        non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", output)
        if not complete or not failed:
            raise BenchError(f"ab printed no counts: {output.strip()[-300:]!r}")
        return int(complete.group(1)), int(failed.group(1)) + int(non_2xx.group(1) if non_2xx else 0)
    if client == "plain":
        entries = json.loads(Path(f"{plain_stats_prefix(workdir, mode)}.json").read_text())  # rewritten each run
        return sum(e["num_requests"] for e in entries), sum(e["num_failures"] for e in entries)
    folder = max(results_parent(workdir, mode).iterdir())  # this run's: folders are named by start time
    with open(folder / "locust_stats.csv", newline="") as handle:
        row = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    return int(row["Request Count"]), int(row["Failure Count"])


def measure(client: str, mode: str, apache: Apache, args, workdir: Path) -> tuple[float, float]:
    command, env = client_command(client, mode, apache, args, workdir)
    logged_before = logged_requests(apache, args.path)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=workdir)
    try:
        start_accesses = total_accesses(apache)
        deadline = time.monotonic() + args.timeout
        while total_accesses(apache) < start_accesses + 10:  # the client's start-up is not measured
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{client} ({mode}) sent no requests: {process.communicate()[0].strip()[-300:]!r}")
            time.sleep(0.05)
        time.sleep(WARM_UP)
        accesses_0, cpu_0, wall_0 = total_accesses(apache), cpu_seconds(process.pid), time.perf_counter()
        time.sleep(args.seconds)
        while total_accesses(apache) < accesses_0 + args.requests:
            if process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        accesses_1, cpu_1, wall_1 = total_accesses(apache), cpu_seconds(process.pid), time.perf_counter()
        if process.poll() is not None:
            output = process.communicate()[0].strip()[-300:]
            raise BenchError(f"{client} ({mode}) ended inside the window (exit {process.returncode}): {output!r}")
        process.send_signal(STOP_SIGNAL[client])
        output, _ = process.communicate(timeout=args.timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    if process.returncode != (1 if client == "ab" else 0):  # ab says 1 when interrupted, after its counts
        raise BenchError(f"{client} ({mode}) exited with status {process.returncode}: {output.strip()[-300:]!r}")
    completed, failed = client_count(client, mode, output, workdir)
    time.sleep(0.3)  # Apache writes a log line after the response has gone out
    logged = logged_requests(apache, args.path) - logged_before
    if failed or not completed <= logged <= completed + args.concurrency:
        raise BenchError(f"{client} ({mode}): {completed} completed, {failed} failed, Apache logged {logged}")
    requests = accesses_1 - accesses_0 - 1  # the status request that opened the window is counted in it
    if requests < args.requests:
        raise BenchError(f"{client} ({mode}): {requests} requests in the window, fewer than --requests "
                         f"{args.requests} before --timeout {args.timeout:g} s")
    rate = requests / (wall_1 - wall_0)
    per_core = requests / (cpu_1 - cpu_0) if cpu_1 > cpu_0 else float("inf")
    return rate, per_core, requests


def measure_paired(mode: str, apache: Apache, args, workdir: Path) -> dict[str, tuple[float, float, int]]:
    """plain and locust at the same time, each on its own copy of the file: {client: (rate, per_core, requests)}."""
    paths = {client: paired_path(client, args.path) for client in PAIRED}
    logged_before = {client: logged_requests(apache, path) for client, path in paths.items()}
    processes: dict[str, subprocess.Popen] = {}
    log = LogCounter(apache, paths.values())
    outputs = {}

    def ended() -> str | None:
        return next((client for client, process in processes.items() if process.poll() is not None), None)

    def in_window(counts: dict, since: dict) -> int:
        return min(counts[path] - since[path] for path in paths.values())

    try:
        for client in PAIRED:
            command, env = client_command(client, mode, apache, args, workdir, paths[client])
            processes[client] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                                 env=env, cwd=workdir)
        deadline = time.monotonic() + args.timeout
        zero = dict.fromkeys(paths.values(), 0)
        while in_window(log.read(), zero) < 10:  # neither client's start-up is measured
            if ended() or time.monotonic() > deadline:
                raise BenchError(f"paired ({mode}): {ended() or 'a client'} sent no requests")
            time.sleep(0.05)
        time.sleep(WARM_UP)
        counts_0, wall_0 = log.read(), time.perf_counter()
        cpu_0 = {client: cpu_seconds(process.pid) for client, process in processes.items()}
        time.sleep(args.seconds)
        while in_window(log.read(), counts_0) < args.requests and not ended() and time.monotonic() < deadline:
            time.sleep(POLL)
        counts_1, wall_1 = log.read(), time.perf_counter()
        cpu_1 = {client: cpu_seconds(process.pid) for client, process in processes.items()}
        if ended():
            raise BenchError(f"paired ({mode}): {ended()} ended inside the window (exit {processes[ended()].returncode})")
        for client, process in processes.items():
            process.send_signal(STOP_SIGNAL[client])
        for client, process in processes.items():
            outputs[client] = process.communicate(timeout=args.timeout)[0]
    finally:
        log.close()
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
    time.sleep(0.3)  # Apache writes a log line after the response has gone out
    figures = {}
    for client, process in processes.items():
        if process.returncode != 0:
            raise BenchError(f"paired {client} ({mode}) exited with status {process.returncode}: "
                             f"{outputs[client].strip()[-300:]!r}")
        completed, failed = client_count(client, mode, outputs[client], workdir)
        logged = logged_requests(apache, paths[client]) - logged_before[client]
        if failed or not completed <= logged <= completed + args.concurrency:
            raise BenchError(f"paired {client} ({mode}): {completed} completed, {failed} failed, Apache logged {logged}")
        requests = counts_1[paths[client]] - counts_0[paths[client]]
        if requests < args.requests:
            raise BenchError(f"paired {client} ({mode}): {requests} requests in the window, fewer than --requests "
                             f"{args.requests} before --timeout {args.timeout:g} s")
        cpu = cpu_1[client] - cpu_0[client]
        figures[client] = (requests / (wall_1 - wall_0), requests / cpu if cpu > 0 else float("inf"), requests)
    return figures


def run(args) -> dict:
    if not (shutil.which("ab") or os.path.exists("/usr/bin/ab")):
        raise BenchError("ab is not installed (apt-get install apache2-utils)")
    root = Path(tempfile.mkdtemp(prefix="loadkit-apache-bench-"))
    root.chmod(0o755)  # Apache's workers (www-data when run as root) must enter it
    measures = {(client, mode): Measure(client, mode) for mode in args.modes for client in args.clients}
    pairs = {(client, mode): Measure(client, mode) for mode in args.modes for client in PAIRED} \
        if all(client in args.clients for client in PAIRED) else {}
    try:
        with Apache(root / "apache") as apache:
            if args.path not in apache.static_files:
                raise BenchError(f"--path {args.path}: Apache serves {', '.join(apache.static_files)}")
            print(f"apache {apache.version} at {apache.base_url}{args.path}, {args.concurrency} connections, "
                  f"windows of {args.seconds:g} s and {args.requests:,} requests at least, {args.runs} run(s), "
                  f"{os.cpu_count()} CPUs", flush=True)
            for run_index in range(args.runs):
                # Interleaved, and the order turned every run: noise on the machine hits all clients alike.
                shift = run_index % len(args.clients)
                clients = args.clients[shift:] + args.clients[:shift]
                for mode in args.modes:
                    for client in clients:
                        rate, per_core, requests = measure(client, mode, apache, args, root)
                        measures[(client, mode)].rates.append(rate)
                        measures[(client, mode)].per_core.append(per_core)
                        measures[(client, mode)].requests.append(requests)
                        print(f"  {client:<7} {mode:<10} {rate:9.0f} req/s {per_core:9.0f} req/s per core "
                              f"({1e6 / per_core:6.1f} us CPU per request, {requests:,} requests)", flush=True)
            if pairs:
                copy_for_pairs(apache, args.path)
                for _round in range(args.runs):
                    for mode in args.modes:
                        figures = measure_paired(mode, apache, args, root)
                        for client, (rate, per_core, requests) in figures.items():
                            pairs[(client, mode)].rates.append(rate)
                            pairs[(client, mode)].per_core.append(per_core)
                            pairs[(client, mode)].requests.append(requests)
                        print(f"  paired  {mode:<10} " + "; ".join(
                            f"{client} {rate:.0f} req/s, {1e6 / per_core:.1f} us CPU per request ({requests:,})"
                            for client, (rate, per_core, requests) in figures.items()), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report(measures, args, pairs)


def report(measures: dict, args, pairs: dict | None = None) -> dict:
    base_client = "ab" if "ab" in args.clients else args.clients[0]
    print(f"\n{'mode':<10} {'client':<7} {'req/s':>9} {'per core':>9} {'ratio':>7} {'ratio/core':>10}  (to {base_client})")
    results = []
    for mode in args.modes:
        base = measures[(base_client, mode)]
        for client in args.clients:
            one = measures[(client, mode)]
            ratio, ratio_per_core = one.rate / base.rate, one.rate_per_core / base.rate_per_core
            print(f"{mode:<10} {client:<7} {one.rate:9.0f} {one.rate_per_core:9.0f} {ratio:6.2f}x {ratio_per_core:9.2f}x")
            results.append({"mode": mode, "client": client, "requests_per_second": round(one.rate, 1),
                            "requests_per_cpu_second": round(one.rate_per_core, 1),
                            f"ratio_to_{base_client}": round(ratio, 3),
                            f"ratio_per_core_to_{base_client}": round(ratio_per_core, 3)})
    overhead = metrics_overhead(measures, args, pairs)
    for row in overhead:
        print(f"{row['mode']:<10} loadkit's metrics over a plain FastHttpUser, side by side (median of "
              f"{len(row['paired_ratios'])} rounds): {row['ratio']:.3f}x req/s, {row['ratio_per_core']:.3f}x per core "
              f"({row['cpu_us_per_request']:.1f} against {row['plain_cpu_us_per_request']:.1f} us CPU per request, "
              f"{row['cpu_overhead_percent']:+.1f}%; goal >= {HTTP_GOAL:.2f}: {'ok' if row['met'] else 'MISSED'}); "
              f"one after the other: best {row['best_ratio']:.3f}x req/s, {row['best_ratio_per_core']:.3f}x per core, "
              f"medians {row['median_ratio']:.3f}x, {row['median_ratio_per_core']:.3f}x")
    return {"path": args.path, "concurrency": args.concurrency, "seconds": args.seconds, "requests": args.requests,
            "runs": args.runs, "cpus": os.cpu_count(), "results": results, "metrics_overhead": overhead}


def metrics_overhead(measures: dict, args, pairs: dict | None = None) -> list[dict]:
    """loadkit's user against the plain one, per mode: what loadkit's metrics cost.

    Judged on the paired rounds (`pairs`: both clients at once, round i of one against round i of
    the other, median of the rounds); the runs made one after the other (`measures`) are given beside."""
    rows = []
    for mode in args.modes:
        plain, loadkit = measures.get(("plain", mode)), measures.get(("locust", mode))
        paired_plain, paired_loadkit = (pairs or {}).get(("plain", mode)), (pairs or {}).get(("locust", mode))
        if plain is None or loadkit is None or paired_plain is None or paired_loadkit is None:
            continue
        rounds = [(lk_rate / rate, lk_core / core) for rate, core, lk_rate, lk_core in zip(
            paired_plain.rates, paired_plain.per_core, paired_loadkit.rates, paired_loadkit.per_core)]
        ratio = statistics.median(r for r, _ in rounds)
        per_core = statistics.median(c for _, c in rounds)
        rows.append({"mode": mode, "ratio": round(ratio, 3), "ratio_per_core": round(per_core, 3),
                     "cpu_overhead_percent": round((1 / per_core - 1) * 100, 1),
                     "cpu_us_per_request": round(1e6 / paired_loadkit.rate_per_core, 1),
                     "plain_cpu_us_per_request": round(1e6 / paired_plain.rate_per_core, 1),
                     "paired_ratios": [[round(r, 3), round(c, 3)] for r, c in rounds],
                     "best_ratio": round(loadkit.best_rate / plain.best_rate, 3),
                     "best_ratio_per_core": round(loadkit.best_per_core / plain.best_per_core, 3),
                     "median_ratio": round(loadkit.rate / plain.rate, 3),
                     "median_ratio_per_core": round(loadkit.rate_per_core / plain.rate_per_core, 3),
                     "goal": HTTP_GOAL, "met": min(ratio, per_core) >= HTTP_GOAL})
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="2 s and 2,000-request windows, keep-alive only, one run")
    parser.add_argument("--concurrency", "-c", type=int, default=10, help="connections of each client (default 10)")
    parser.add_argument("--seconds", type=float, default=5.0, help="least measured window per run (default 5)")
    parser.add_argument("--requests", type=int, default=WINDOW_REQUESTS,
                        help=f"least requests in a measured window (default {WINDOW_REQUESTS:,})")
    parser.add_argument("--path", default="/1k.bin", help="the file both clients ask for (default /1k.bin)")
    parser.add_argument("--modes", default="keepalive,close", help="keepalive,close (default both)")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="ab,plain,locust (default all)")
    parser.add_argument("--runs", type=int, default=1, help="runs per pairing, median reported (default 1)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per client process (default 300 s)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.requests, args.modes, args.runs = 2.0, 2000, "keepalive", 1
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    for mode in args.modes:
        if mode not in MODES:
            parser.error(f"--modes: {mode!r} is not one of {', '.join(MODES)}")
    args.clients = list(dict.fromkeys(client.strip() for client in args.clients.split(",") if client.strip()))
    if not args.clients or any(client not in CLIENTS for client in args.clients):
        parser.error(f"--clients: use one or more of {', '.join(CLIENTS)}, comma-separated")
    if args.concurrency < 1 or args.seconds <= 0 or args.runs < 1 or args.requests < 1:
        parser.error("--concurrency, --seconds, --requests and --runs must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except (BenchError, InstanceError) as error:
        print(f"apache bench: {error}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
