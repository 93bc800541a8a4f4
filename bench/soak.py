"""loadkit's soak benchmark: a long run with faults, where every message must be accounted for.

    python3 bench/soak.py [--messages 1000000] [--postfix-messages 20000] [--sessions 20]
                          [--length 1024] [--reject rcpt:451:0.001] [--seed 1]
                          [--skip-postfix] [--json PATH]

Not part of the test run: the million messages take some minutes.

1. ``loadkit source -A -d`` sends --messages into ``loadkit sink`` that
   rejects at a low rate (``--reject rcpt:451:0.001 --seed 1``). Checked:
   successes + failures = attempts (source's summary), every failure is the
   injected one (``451 4.3.0 at RCPT``), the sink's count = successes, its
   injected faults = failures, its 451 replies = failures.
2. ``loadkit source`` sends --postfix-messages into a loopback Postfix
   (`loadkit.instances.Postfix`, as ``loadkit target postfix up``), which
   relays to its own ``loadkit sink``. Checked once its queue is empty:
   Postfix delivered (``status=sent`` in its log) = accepted (the source's
   successes) = the sink's count. Needs root and Postfix.

Prints the figures (rates, durations, the sink's peak RSS) and exits 0 when
every check held, 1 when one did not, 2 when a run could not be made.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"(\d+) messages \((\d+) delivered, (\d+) failed\)")
FAILURE_LINE = re.compile(r"^\s+(\d+)\s+(.+)$", re.MULTILINE)


class SoakError(Exception):
    """A run that could not be made: no numbers to check."""


def loadkit(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "loadkit", *arguments]


def run_source(port: int, messages: int, sessions: int, length: int, timeout: float) -> dict:
    command = loadkit("source", "-A", "-d", "-s", str(sessions), "-m", str(messages), "-l", str(length),
                      f"127.0.0.1:{port}")
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.monotonic() - started
    summary = SUMMARY.search(done.stdout)
    if summary is None or done.returncode not in (0, 1) or "Traceback" in done.stdout + done.stderr:
        raise SoakError(f"loadkit source failed (exit {done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    attempts, delivered, failed = map(int, summary.groups())
    failures = {key: int(count) for count, key in FAILURE_LINE.findall(done.stdout.split("failures:", 1)[-1])
                } if "failures:" in done.stdout else {}
    return {"attempts": attempts, "delivered": delivered, "failed": failed, "failures": failures,
            "seconds": round(seconds, 2), "msgs_per_s": round(attempts / seconds)}


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as stream:
        return int(re.search(r"VmHWM:\s+(\d+) kB", stream.read()).group(1)) / 1024


def soak_sink(args, workdir: Path) -> tuple[dict, list[str]]:
    stats_path = workdir / "sink-stats.json"
    sink = subprocess.Popen(loadkit("sink", "--reject", args.reject, "--seed", str(args.seed),
                                    "--stats-json", str(stats_path), "127.0.0.1:0"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = sink.stdout.readline()
        if "listening on" not in line:
            raise SoakError(f"loadkit sink did not start: {line!r} {sink.stderr.read()}")
        port = int(line.rsplit(":", 1)[1])
        source = run_source(port, args.messages, args.sessions, args.length, args.timeout)
        peak = peak_rss_mib(sink.pid)
    finally:
        sink.send_signal(signal.SIGTERM)
        status = sink.wait(30)
    if status != 0:
        raise SoakError(f"loadkit sink exited {status}: {sink.stderr.read()[-2000:]}")
    stats = json.loads(stats_path.read_text())
    injected = stats["faults"].get("reject", {}).get("RCPT", 0) or sum(stats["faults"].get("reject", {}).values())
    figures = {"source": source, "sink": {"messages": stats["messages"], "injected_faults": injected,
                                          "replies_451": stats["replies"].get("451", 0),
                                          "sessions": stats["sessions"], "peak_rss_mib": round(peak, 1)}}
    problems = []
    if source["attempts"] != args.messages:
        problems.append(f"attempts {source['attempts']} != {args.messages} asked for")
    if source["delivered"] + source["failed"] != source["attempts"]:
        problems.append(f"successes {source['delivered']} + failures {source['failed']} != {source['attempts']}")
    if sum(source["failures"].values()) != source["failed"]:
        problems.append(f"failures by kind {source['failures']} do not add up to {source['failed']}")
    if set(source["failures"]) - {"451 4.3.0 at RCPT"}:
        problems.append(f"failures other than the injected one: {source['failures']}")
    if stats["messages"] != source["delivered"]:
        problems.append(f"sink count {stats['messages']} != successes {source['delivered']}")
    if injected != source["failed"] or figures["sink"]["replies_451"] != source["failed"]:
        problems.append(f"sink injected {injected} faults, sent {figures['sink']['replies_451']} 451s; "
                        f"the source saw {source['failed']} failures")
    return figures, problems


def soak_postfix(args, workdir: Path) -> tuple[dict, list[str]]:
    sys.path.insert(0, str(REPO))
    from loadkit.instances import Postfix

    postfix = Postfix(workdir / "postfix", port=0).start()
    try:
        source = run_source(postfix.port, args.postfix_messages, args.sessions, args.length, args.timeout)
        started = time.monotonic()
        if not postfix.wait_for_empty_queue(args.timeout):
            raise SoakError(f"Postfix's queue did not empty in {args.timeout:.0f} s: {postfix.queue_counts()}")
        drained = time.monotonic() - started
        deadline = time.monotonic() + 30  # postlogd writes asynchronously: the last lines trail the queue
        sent = postfix.log_path.read_text(errors="replace").count("status=sent")
        while sent < source["delivered"] and time.monotonic() < deadline:
            time.sleep(0.2)
            sent = postfix.log_path.read_text(errors="replace").count("status=sent")
    finally:
        postfix.stop()
    sink = postfix.sink_stats()
    figures = {"source": source, "postfix_delivered": sent, "queue_drained_after_s": round(drained, 2),
               "sink_messages": sink["messages"]}
    problems = []
    if source["delivered"] + source["failed"] != source["attempts"] or source["attempts"] != args.postfix_messages:
        problems.append(f"source: {source}")
    if not (sent == source["delivered"] == sink["messages"]):
        problems.append(f"Postfix accepted {source['delivered']}, delivered {sent}, the sink counted {sink['messages']}")
    return figures, problems


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Soak: a million messages with faults, every one accounted for.")
    add = parser.add_argument
    add("--messages", type=int, default=1_000_000, help="messages into loadkit sink (default 1000000)")
    add("--postfix-messages", type=int, default=20_000, help="messages through the loopback Postfix (default 20000)")
    add("--sessions", type=int, default=20, help="sessions in parallel, -s (default 20)")
    add("--length", type=int, default=1024, help="body bytes, -l (default 1024)")
    add("--reject", default="rcpt:451:0.001", help="the sink's fault (default rcpt:451:0.001)")
    add("--seed", type=int, default=1, help="the fault's random seed (default 1)")
    add("--timeout", type=float, default=3600.0, help="seconds allowed to each run (default 3600)")
    add("--skip-postfix", action="store_true", help="leave out the Postfix run")
    add("--json", metavar="PATH", help="write the figures there")
    args = parser.parse_args(argv)
    if min(args.messages, args.postfix_messages, args.sessions) < 1 or args.length < 0:
        parser.error("counts must be at least 1 and --length 0 or more")
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + env_path if env_path else "")
    results, problems = {}, []
    try:
        with tempfile.TemporaryDirectory(prefix="loadkit-soak-") as workdir:
            os.chmod(workdir, 0o755)  # Postfix's own users must reach its state folder in there
            results["sink"], found = soak_sink(args, Path(workdir))
            problems += found
            print(json.dumps({"sink": results["sink"]}, indent=2), flush=True)
            if not args.skip_postfix:
                results["postfix"], found = soak_postfix(args, Path(workdir))
                problems += found
                print(json.dumps({"postfix": results["postfix"]}, indent=2), flush=True)
    except (SoakError, subprocess.TimeoutExpired, OSError) as error:
        print(f"soak: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - a LoadkitError from the Postfix instance, in one line
        print(f"soak: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    results["problems"] = problems
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    for problem in problems:
        print(f"soak: FAILED: {problem}", file=sys.stderr)
    if not problems:
        print("soak: every message accounted for")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
