"""What DKIM signing costs a loopback Postfix, and what verifying costs loadkit's sink.

    python bench/dkim_bench.py [--seconds 20] [--sessions 8] [--max-messages 40000] [--json PATH]

Run as root (Postfix's master needs it), with postfix, amavisd-new and
opendkim installed (scripts/install-peers). In one run, on one machine:

1. **Postfix's sustained rate**, four ways, each a fresh instance relaying
   to a fresh ``loadkit sink`` that only counts:
     none           Postfix alone;
     opendkim-inet  OpenDKIM signing as a milter on a loopback port;
     opendkim-unix  the same milter on a unix socket;
     amavis         amavisd-new signing as a content filter, the mail submitted on
               its submission port (two hops through Postfix, one through
               amavisd; amavisd runs 2 child processes, one per core here).
   loadkit's client sends messages of the realistic size mix
   (``size=mix:realistic``, median about 6 KiB, mean about 66 KiB) from
   `--sessions` sessions for `--seconds` (at most `--max-messages`), then
   Postfix's queue is drained. The rate is accepted messages / (sending
   time + drain time): what went in and came out the other side per
   second. Every message must reach the sink (its ``--stats-json`` count is
   checked) or the run stops with exit status 2. The cost of signing is the
   rate without DKIM divided by the rate with it.
2. **The sink's rate** with and without ``--dkim-verify``: loadkit's client
   sends DKIM-signed messages of the same mix straight to the sink for
   `--seconds`; msgs/s and the sink's CPU time per message (its own
   user+system time, from /proc).

The load is bounded in count and time, and all of it stays on 127.0.0.1.

Measured 2026-12-02, 2 cores shared with other test runs (load average 6-8),
``--seconds 30 --sessions 8 --max-messages 2000``, mean message 65 KB; two
runs:

    Postfix alone                      289 / 286 msgs/s
    + OpenDKIM milter, loopback inet    82 /  83 msgs/s   3.55x / 3.46x
    + OpenDKIM milter, unix socket     193 / 182 msgs/s   1.50x / 1.57x
    + amavisd-new, 2 children           18 /  18 msgs/s   16.0x / 16.1x
    loadkit sink                      1601 / 1196 msgs/s   140 / 155 µs CPU a message
    loadkit sink --dkim-verify         259 /  196 msgs/s  1555 / 1635 µs CPU a message (11x)

The milter's inet socket costs more than signing itself: over loopback TCP
each milter exchange waits on delayed ACKs. amavisd spends about half of its
110 ms a message waiting for DATA the same way (its TIMING log).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import gevent  # noqa: E402

from loadkit.dkim import DkimSigner  # noqa: E402
from loadkit.instances import Postfix  # noqa: E402
from loadkit.messages import MessageFactory  # noqa: E402
from loadkit.smtp import SmtpClient, SMTPError  # noqa: E402
from loadkit.urls import parse_url  # noqa: E402

PROFILE = "size=mix:realistic"
VARIANTS = ("none", "opendkim-inet", "opendkim-unix", "amavis")
DRAIN_TIMEOUT = 300.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A run that failed or miscounted: its numbers would mean nothing."""


class Sink:
    """A ``loadkit sink`` process: its URL, its CPU time, its counters after it stops."""

    def __init__(self, folder: Path, *options: str):
        self.stats_path = folder / "sink-stats.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "sink", "--no-trace", "--stats-json", str(self.stats_path),
             *options, "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise BenchError(f"loadkit sink did not start: {line!r} {self.process.stderr.read()[-500:]}")
        self.url = line.rsplit(" ", 1)[1].strip()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        if self.process.wait(30) != 0:
            raise BenchError(f"loadkit sink exited {self.process.returncode}: {self.process.stderr.read()[-500:]}")
        return json.loads(self.stats_path.read_text())


def send_for(url: str, factory: MessageFactory, sessions: int, seconds: float, cap: int) -> dict:
    """Send from `sessions` sessions until `seconds` pass or `cap` messages were sent; the counts."""
    counts = {"sent": 0, "accepted": 0, "failed": 0}
    deadline = time.monotonic() + seconds
    target = parse_url(url)

    def session() -> None:
        client = SmtpClient(target, timeout=120.0)
        try:
            while time.monotonic() < deadline and counts["sent"] < cap:
                counts["sent"] += 1
                message = factory.build()
                try:
                    client.send(factory.sender, factory.recipients(), message)
                    counts["accepted"] += 1
                except SMTPError:
                    counts["failed"] += 1
        finally:
            client.close()

    gevent.joinall([gevent.spawn(session) for _ in range(sessions)], raise_error=True)
    return counts


def postfix_rate(folder: Path, variant: str, args) -> dict:
    dkim, _, socket = variant.partition("-")
    dkim = None if dkim == "none" else dkim
    sink = Sink(folder)
    factory = MessageFactory(seed=7, profile=PROFILE)
    try:
        with Postfix(folder / "postfix", relay_to=sink.url, dkim=dkim, dkim_socket=socket or "inet") as postfix:
            url = postfix.submission_url if dkim == "amavis" else postfix.smtp_url
            started = time.monotonic()
            counts = send_for(url, factory, args.sessions, args.seconds, args.max_messages)
            sent_in = time.monotonic() - started
            if not postfix.wait_for_empty_queue(DRAIN_TIMEOUT, interval=0.2):
                raise BenchError(f"{variant}: Postfix's queue not empty after {DRAIN_TIMEOUT:.0f}s")
            elapsed = time.monotonic() - started
    finally:
        stats = sink.stop()
    if stats["messages"] != counts["accepted"] or counts["failed"]:
        raise BenchError(f"{variant}: accepted {counts['accepted']}, failed {counts['failed']}, "
                         f"the sink counted {stats['messages']}")
    return {"filter": variant, "messages": counts["accepted"], "send_seconds": round(sent_in, 2),
            "drain_seconds": round(elapsed - sent_in, 2), "rate": round(counts["accepted"] / elapsed, 1),
            "mean_bytes": round(stats["bytes"] / max(1, stats["messages"]))}


def sink_rate(folder: Path, verify: bool, args) -> dict:
    signer = DkimSigner.generate("bench", "bench.test")
    keys = folder / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "bench._domainkey.bench.test.txt").write_bytes(signer.dns_txt_record())
    sink = Sink(folder, *(["--dkim-verify", str(keys)] if verify else []))
    factory = MessageFactory(seed=9, profile=PROFILE, dkim=signer)
    try:
        cpu_before = sink.cpu_seconds()
        started = time.monotonic()
        counts = send_for(sink.url, factory, args.sessions, args.seconds, args.max_messages)
        elapsed = time.monotonic() - started
        cpu = sink.cpu_seconds() - cpu_before
    finally:
        stats = sink.stop()
    if stats["messages"] != counts["accepted"] or counts["failed"]:
        raise BenchError(f"sink: accepted {counts['accepted']}, the sink counted {stats['messages']}")
    if verify and stats["dkim"]["pass"].get("bench.test") != counts["accepted"]:
        raise BenchError(f"sink: {counts['accepted']} signed messages, DKIM counts {stats['dkim']}")
    return {"verify": verify, "messages": counts["accepted"], "rate": round(counts["accepted"] / elapsed, 1),
            "cpu_us_per_message": round(cpu / max(1, counts["accepted"]) * 1e6, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="sending time per measurement (default 20)")
    parser.add_argument("--sessions", type=int, default=8, help="concurrent SMTP sessions (default 8)")
    parser.add_argument("--max-messages", type=int, default=40000, help="at most this many per measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the figures there")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("dkim_bench: run as root (Postfix's master needs it)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="loadkit-dkim-bench-"))
    root.chmod(0o755)  # the servers' own users enter it
    try:
        results = {"postfix": [], "sink": []}
        for variant in VARIANTS:
            folder = root / variant
            folder.mkdir()
            row = postfix_rate(folder, variant, args)
            results["postfix"].append(row)
            print(f"postfix {row['filter']:14} {row['rate']:8.1f} msgs/s  ({row['messages']} messages, "
                  f"sent in {row['send_seconds']} s, drained in {row['drain_seconds']} s, "
                  f"mean {row['mean_bytes']} bytes)", flush=True)
        for verify in (False, True):
            folder = root / f"sink-{'verify' if verify else 'plain'}"
            folder.mkdir()
            row = sink_rate(folder, verify, args)
            results["sink"].append(row)
            print(f"sink {'--dkim-verify' if verify else 'plain':14} {row['rate']:8.1f} msgs/s  "
                  f"{row['cpu_us_per_message']:8.1f} µs CPU/message ({row['messages']} messages)", flush=True)
    except BenchError as error:
        print(f"dkim_bench: {error}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = results["postfix"][0]["rate"]
    results["signing_cost"] = {row["filter"]: round(base / row["rate"], 2) for row in results["postfix"][1:]}
    plain, verified = results["sink"]
    results["verify_cpu_ratio"] = round(verified["cpu_us_per_message"] / plain["cpu_us_per_message"], 2)
    for name, ratio in results["signing_cost"].items():
        print(f"signing with {name}: Postfix's rate without DKIM is {ratio}x its rate with it")
    print(f"sink verification: {results['verify_cpu_ratio']}x the sink's CPU per message")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
