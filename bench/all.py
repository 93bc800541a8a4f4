"""Every speed goal in one run: SMTP, LMTP, STARTTLS, HTTP, the master and soak reports.

    python bench/all.py [--quick] [--runs N] [--soak] [--json PATH] [--strict]

It runs the two benchmarks behind the goals, then states each goal's ratio:

1. `loadkit source -d` against `smtp-source -d`, both into a fresh
   `smtp-sink` (bench/run.py, mode reuse);                 goal >= 1.00x
2. the same with a new connection per message (mode new);   goal >= 0.80x
3. LMTP: `loadkit source -L -d` against `smtp-source -L -d` into
   `smtp-sink -L` (mode lmtp), its ratio within 10% of goal 1's; STARTTLS:
   `loadkit source --starttls` against its own plain path into `loadkit
   sink` (smtp-source has no TLS), reusing connections within 10%, and with
   a new connection per message the handshake's CPU per connection, client
   and sink (modes tls-reuse, tls-new);
4. HTTP: Locust's FastHttpUser with loadkit's metrics (locustfiles/apache.py)
   against a plain FastHttpUser, against the same loopback Apache
   (bench/apache_bench.py, keep-alive), in requests/s and per client CPU
   second;                                                  goal >= 0.95x
5. the master's CPU per worker report, replayed from 8, 100 and 1,000
   simulated workers (bench/master_bench.py);              goal <= 1 ms
6. a soak run's report: `loadkit report` of a synthetic results folder
   (bench/report_bench.py), one hour at 5,000 msgs/s, or with --soak the
   goal's 24 hours at 10,000 msgs/s (1.7 GB, written once into a cache);
                                                   goal < 30 s CPU, < 1 GiB

Goals 5 and 6 print their budget over the measure as the ratio (>= 1.00x:
within it).

Runs are interleaved inside each benchmark; CPU per message (user + system of
the client process, start-up included) is printed beside msgs/s, as it holds
steadier than wall time on a shared machine. The load average is read before
and after, so a table can say what the machine was doing.

Exit status: 0 measured, 1 a goal missed with --strict, 2 a failed or
miscounted run. --quick is a smoke run (small counts, one run, ~1 min): its
ratios are start-up, not speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apache_bench
import run as mail_bench

BENCH = Path(__file__).resolve().parent
MASTER_GOAL_MS = 1.0

MAIL_MODES = "reuse,new,lmtp,tls-reuse,tls-new"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one run: a smoke test (~1 min)")
    parser.add_argument("--runs", type=int, default=3, help="runs of every measurement, medians reported (default 3)")
    parser.add_argument("--http-seconds", type=float, default=5.0, help="HTTP measuring window per run (default 5)")
    parser.add_argument("--skip-http", action="store_true", help="leave out goal 4 (needs apache2)")
    parser.add_argument("--skip-master", action="store_true", help="leave out goal 5")
    parser.add_argument("--skip-report", action="store_true", help="leave out goal 6")
    parser.add_argument("--soak", action="store_true", help="goal 6 on the 24-hour folder (slow: minutes, 1.7 GB cached)")
    parser.add_argument("--json", metavar="PATH", help="write every figure there")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.http_seconds <= 0:
        parser.error("--runs must be at least 1 and --http-seconds more than 0")
    return args


def mail_arguments(args) -> list[str]:
    argv = ["--sides", "client", "--modes", MAIL_MODES, "--skip-smtplib", "--runs", str(args.runs)]
    return argv + (["--quick"] if args.quick else [])


def http_arguments(args) -> list[str]:
    argv = ["--clients", "plain,locust", "--modes", "keepalive", "--runs", str(args.runs),
            "--seconds", f"{args.http_seconds:g}"]
    return argv + (["--quick"] if args.quick else [])


def child_figures(script: str, arguments: list[str]) -> dict | list:
    """Run one of the benches in its own process (its memory is its own) and read the figures it writes."""
    with tempfile.TemporaryDirectory() as folder:
        figures = Path(folder) / "figures.json"
        child = subprocess.run([sys.executable, str(BENCH / script), *arguments, "--json", str(figures)], check=False)
        if not figures.is_file():
            raise mail_bench.BenchError(f"{script} failed (exit {child.returncode})")
        return json.loads(figures.read_text())


def master_arguments(args) -> list[str]:
    return ["--seconds", "10"] if args.quick else []


def report_arguments(args) -> list[str]:
    if args.soak:
        return ["--soak"]
    return ["--seconds", "600"] if args.quick else []


def budget_lines(master: list | None, report: dict | None) -> list[tuple[str, float, float, str]]:
    """Goals 5 and 6 as (goal, budget / measure, 1.0, detail)."""
    lines = []
    for one in master or []:
        lines.append((f"5 master, {one['workers']:,} workers", MASTER_GOAL_MS / one["ms_per_report"], 1.0,
                      f"{one['ms_per_report']:.3f} ms CPU per worker report, "
                      f"{one['reports_per_core_second']:,.0f} reports/s per core"))
    if report:
        built, budget = report["report"], report["budget"]
        ratio = min(budget["cpu_seconds"] / built["cpu"], budget["peak_bytes"] / built["peak"])
        lines.append((f"6 report of {report['seconds'] / 3600:.3g} h", ratio, 1.0,
                      f"{built['cpu']:.1f} s CPU, peak {built['peak'] / 2**20:,.0f} MiB, "
                      f"report.html {report['report_html_bytes'] / 2**20:.2f} MiB"))
    return lines


def goal_lines(mail: dict, http: dict | None) -> list[tuple[str, float | None, float, str]]:
    """(goal, ratio, least ratio, detail) for each goal measured."""
    rows = {(m["client"], m["server"], m["mode"]): m for m in mail["measurements"]}
    lines = []

    def client_row(mode: str, client: str = "loadkit source", server: str = "smtp-sink"):
        return rows.get((client, server, mode))

    for number, mode, goal in (("1 client, reuse (-d)", "reuse", 1.0), ("2 client, new connection", "new", 0.8)):
        loadkit, base = client_row(mode), client_row(mode, "smtp-source")
        if loadkit and base:
            cpu_ratio = base["cpu_per_message_us"] / loadkit["cpu_per_message_us"]
            lines.append((number, loadkit["ratio"], goal,
                          f"{loadkit['rate']:,.0f} vs {base['rate']:,.0f} msgs/s; after start-up "
                          f"{loadkit['sending_ratio']:.2f}x; CPU per message {loadkit['cpu_per_message_us']:.1f} vs "
                          f"{base['cpu_per_message_us']:.1f} us ({cpu_ratio:.2f}x per core)"))
    lmtp = mail.get("lmtp")
    if lmtp:
        lines.append(("3 LMTP / plain ratio", lmtp["lmtp_over_reuse"], mail_bench.LMTP_GOAL,
                      f"LMTP {lmtp['lmtp_ratio']:.2f}x smtp-source -L, SMTP {lmtp['reuse_ratio']:.2f}x smtp-source; "
                      f"per core {lmtp['lmtp_over_reuse_per_core']:.2f} of it"))
    tls = client_row("tls-reuse", mail_bench.TLS_CLIENT, "loadkit sink")
    if tls:
        plain = client_row("tls-reuse", "loadkit source", "loadkit sink")
        lines.append(("3 STARTTLS / plain, reuse", tls["ratio"], mail_bench.GOALS[("client", "tls-reuse")],
                      f"{tls['rate']:,.0f} vs {plain['rate']:,.0f} msgs/s into loadkit sink"))
    tls_new = client_row("tls-new", mail_bench.TLS_CLIENT, "loadkit sink")
    handshake = mail.get("tls_handshake_cpu_us")
    if tls_new and handshake:
        lines.append(("3 STARTTLS / plain, new conn.", tls_new["ratio"], 0.0,
                      f"handshake CPU per connection: client {handshake['client_us'] / 1000:.2f} ms, "
                      f"sink {handshake['sink_us'] / 1000:.2f} ms"))
    for row in (http or {}).get("metrics_overhead", []):
        lines.append((f"4 HTTP metrics ({row['mode']})", min(row["ratio"], row["ratio_per_core"]), row["goal"],
                      f"{row['ratio']:.3f}x req/s, {row['ratio_per_core']:.3f}x per core of a plain FastHttpUser "
                      f"({row['cpu_overhead_percent']:+.1f}% CPU per request)"))
    return lines


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print("== SMTP, LMTP and STARTTLS (bench/run.py) ==", flush=True)
    mail_args = mail_bench.parse_args(mail_arguments(args))
    try:
        pairings = mail_bench.run_pairings(mail_args)
    except mail_bench.BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    mail_bench.print_table(pairings, mail_args)
    mail = mail_bench.results(pairings, mail_args)
    http = None
    if not args.skip_http:
        print("\n== HTTP (bench/apache_bench.py) ==", flush=True)
        try:
            http = apache_bench.run(apache_bench.parse_args(http_arguments(args)))
        except (apache_bench.BenchError, apache_bench.InstanceError) as error:
            print(f"bench: error: {error}", file=sys.stderr)
            return 2
    master = report = None
    try:
        if not args.skip_master:
            print("\n== the master (bench/master_bench.py) ==", flush=True)
            master = child_figures("master_bench.py", master_arguments(args))
        if not args.skip_report:
            print("\n== a soak run's report (bench/report_bench.py) ==", flush=True)
            report = child_figures("report_bench.py", report_arguments(args))
    except mail_bench.BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    load_after = os.getloadavg()
    lines = goal_lines(mail, http) + budget_lines(master, report)
    print(f"\n== goals ({os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after; median of {mail_args.runs} run(s)) ==")
    missed = False
    for name, ratio, goal, detail in lines:
        verdict = "" if not goal else ("ok" if ratio >= goal else "MISSED")
        missed |= verdict == "MISSED"
        print(f"  {name:<32} {ratio:5.2f}x  {'goal ' + format(goal, '.2f') if goal else '':<10} {verdict:<6}  {detail}")
    if args.json:
        report = {"started": started, "cpus": os.cpu_count(), "load_average_before": load_before,
                  "load_average_after": load_after, "mail": mail, "http": http, "master": master, "report": report,
                  "goals": [{"goal": n, "ratio": r, "least": g, "detail": d} for n, r, g, d in lines]}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
