"""Workers as separate hosts: each worker in its own network namespace, told apart by its trace source.

`locust --master` and two `locust --worker` processes against `loadkit sink`
(with `--trace-log`, one line per traced message). Each worker stamps its
own source tag (`<host>-<pid>`) in X-Loadkit-Trace, so the sink tells the
workers apart: one source per worker process, no duplicates, and the
messages of each source are exactly that worker's share in run.json (the
same check on loopback rides on test_distributed_loopback.py's run).

Each worker is put in a network namespace of its own, joined
to the root namespace by a veth pair on a private /30, as separate hosts on
one network would be: the master and the sink listen on the root side of the
first worker's veth, the second worker reaches them through its own veth
(its default route; the root namespace owns the address, so nothing is
forwarded). Namespaces and veths get names unique to the test run and are
removed in `finally`. Without root or `ip` the test is skipped, and with
CI=true it fails instead.

This test is not about heartbeats (test_distributed_worker_lost*.py are):
its master gives workers HEARTBEAT_LIVENESS heartbeats of silence instead
of Locust's 3, so that a busy machine (both workers once missed 3 at a load
average of 18) cannot drop a worker from a run that checks counts.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cannot_run
from tests.integration.peers import (
    heartbeat_gaps,
    loadkit_sink,
    locust_and_merged_counts,
    master_and_workers,
    master_log_locustfile,
)

pytestmark = [pytest.mark.peer("ip"), pytest.mark.slow]

LOCUSTFILE = str(Path(__file__).resolve().parents[2] / "locustfiles" / "smtp.py")
HEARTBEAT_LIVENESS = 30  # longer than the whole run: no worker is dropped for being slow


def _run(tmp_path, bind: str, worker_prefixes: list[list[str]]):
    """Master + one worker per prefix (a command put before `python -m locust --worker`)."""
    results = tmp_path / "results"
    trace_log = tmp_path / "trace.log"
    master_log_file, master_log = master_log_locustfile(tmp_path, heartbeat_liveness=HEARTBEAT_LIVENESS)
    with loadkit_sink(tmp_path, "--trace-log", str(trace_log), listen=f"{bind}:0") as (url, read_stats):
        options = ["-u", "4", "-r", "4", "-t", "4s", "--results", str(results), "--check", "no_worker_lost"]
        with master_and_workers(f"{LOCUSTFILE},{master_log_file}", url, options, bind=bind,
                                worker_prefixes=worker_prefixes) as (master, workers):
            out, err = master.communicate(timeout=90)
            for worker in workers:
                worker.wait(30)
        sink = read_stats()
    gaps = heartbeat_gaps(master_log)
    assert master.returncode == 0, f"longest heartbeat silences {gaps}\n{err[-2000:]}"
    assert max(gaps.values(), default=0.0) < HEARTBEAT_LIVENESS, gaps
    (folder,) = results.iterdir()
    sources = collections.Counter(line.split()[1] for line in trace_log.read_text().splitlines())
    return folder, sink, sources, [worker.pid for worker in workers]


def check_trace_sources(folder: Path, sink: dict, sources: collections.Counter, worker_pids: list[int]) -> None:
    """Every count equal, and one trace source per worker process carrying exactly its share."""
    locust_count, merged = locust_and_merged_counts(folder)
    run = json.loads((folder / "run.json").read_text())
    assert merged == locust_count == sink["messages"] == sum(run["worker_shares"].values()) > 0
    assert run["failures"] == 0

    # One trace source per worker process (`ip netns exec` and `python -m` keep the worker's pid).
    host = socket.gethostname().split(".")[0]
    assert set(sources) == {f"{host}-{pid}" for pid in worker_pids}
    assert sorted(sources.values()) == sorted(run["worker_shares"].values())
    assert sink["trace"]["messages"] == sink["messages"] and sink["trace"]["duplicates"] == 0


def _require_namespaces() -> str:
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    reason = None
    if ip is None:
        reason = "no `ip` command (apt-get install iproute2)"
    elif os.geteuid() != 0:
        reason = "network namespaces need root"
    else:
        probe = f"lkprobe{os.getpid()}"
        made = subprocess.run([ip, "netns", "add", probe], capture_output=True, text=True)
        if made.returncode != 0:
            reason = f"cannot make a network namespace: {made.stderr.strip()}"
        else:
            subprocess.run([ip, "netns", "del", probe], capture_output=True)
    if reason:
        cannot_run(reason)
    return ip


def _free_subnet(ip: str) -> int:
    """A third octet of 10.203.X.0/24 with no address of this host in it (two /30s are used)."""
    used = subprocess.run([ip, "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    for _ in range(50):
        octet = random.randrange(256)
        if f"10.203.{octet}." not in used:
            return octet
    raise RuntimeError("no free 10.203.X.0/24 subnet")


def test_workers_in_their_own_network_namespaces(tmp_path):
    ip = _require_namespaces()
    tag = f"{os.getpid() % 100000:05d}{random.randrange(16 ** 3):03x}"  # unique names: tests run in parallel
    octet = _free_subnet(ip)
    namespaces, veths = [], []

    def sh(*argv):
        done = subprocess.run([ip, *argv], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, f"ip {' '.join(argv)}: {done.stderr.strip()}"

    try:
        for index in range(2):
            namespace, host_side, ns_side = f"lkw{tag}{index}", f"lk{tag}{index}h", f"lk{tag}{index}n"
            base = 4 * index  # 10.203.X.(base)/30: .base+1 root side, .base+2 the worker's
            sh("netns", "add", namespace)
            namespaces.append(namespace)
            sh("link", "add", host_side, "type", "veth", "peer", "name", ns_side)
            veths.append(host_side)
            sh("link", "set", ns_side, "netns", namespace)
            sh("addr", "add", f"10.203.{octet}.{base + 1}/30", "dev", host_side)
            sh("link", "set", host_side, "up")
            sh("-n", namespace, "addr", "add", f"10.203.{octet}.{base + 2}/30", "dev", ns_side)
            sh("-n", namespace, "link", "set", ns_side, "up")
            sh("-n", namespace, "link", "set", "lo", "up")
            sh("-n", namespace, "route", "add", "default", "via", f"10.203.{octet}.{base + 1}")
        # Master and sink on the root side of the first veth; both workers reach it.
        bind = f"10.203.{octet}.1"
        folder, sink, sources, pids = _run(tmp_path, bind, [[ip, "netns", "exec", ns] for ns in namespaces])
        check_trace_sources(folder, sink, sources, pids)
        run = json.loads((folder / "run.json").read_text())
        assert run["target"].startswith(f"smtp://{bind}:")
    finally:
        for host_side in veths:  # deleting one end of a veth deletes its peer too
            subprocess.run([ip, "link", "del", host_side], capture_output=True, timeout=10)
        for namespace in namespaces:
            subprocess.run([ip, "netns", "del", namespace], capture_output=True, timeout=10)
