"""CPU time per message of `loadkit source`, two checkouts alternating.

    python bench/cpu_ab.py OLD_TREE NEW_TREE [--runs N] [--messages N] [--new]

Each run is one `loadkit source -s 20 -l 5120` (``-d`` unless --new) into a
fresh Postfix `smtp-sink`, with PYTHONPATH pointing at one tree; the trees
alternate run by run, so that noise on a shared machine hits both alike. CPU
per message (user + system of the client process / messages, start-up
included) is the steady measure where wall-clock msgs/s is not.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_run(tree: str, messages: int, reuse: bool) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one loadkit source run from `tree`."""
    port = free_port()
    sink = subprocess.Popen([shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", "-u", "nobody",
                             f"127.0.0.1:{port}", "256"])
    try:
        time.sleep(0.3)
        env = dict(os.environ, PYTHONPATH=tree)
        command = [sys.executable, "-m", "loadkit", "source", "-s", "20", "-m", str(messages), "-l", "5120"]
        command += ["-d"] if reuse else []
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([*command, f"127.0.0.1:{port}"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0 or f"{messages} messages ({messages} delivered" not in done.stdout:
            sys.exit(f"cpu_ab: run from {tree} failed: {done.stdout}{done.stderr}")
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall
    finally:
        sink.terminate()
        sink.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--new-connections", action="store_true", help="a new connection per message")
    args = parser.parse_args()
    cpu = {args.old: [], args.new: []}
    wall = {args.old: [], args.new: []}
    for run in range(args.runs):
        order = (args.old, args.new) if run % 2 == 0 else (args.new, args.old)
        for tree in order:
            seconds, elapsed = one_run(tree, args.messages, not args.new_connections)
            cpu[tree].append(seconds / args.messages * 1e6)
            wall[tree].append(args.messages / elapsed)
            print(f"run {run + 1}/{args.runs} {tree:<30} {cpu[tree][-1]:6.1f} us/msg CPU "
                  f"{wall[tree][-1]:8,.0f} msgs/s", flush=True)
    old, new = statistics.median(cpu[args.old]), statistics.median(cpu[args.new])
    print(f"median CPU per message: old {old:.1f} us, new {new:.1f} us ({(new - old) / old * 100:+.1f}%); "
          f"msgs/s old {statistics.median(wall[args.old]):,.0f}, new {statistics.median(wall[args.new]):,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
