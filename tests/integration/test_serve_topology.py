"""The Kubernetes topology for real, with network namespaces standing in for pods.

deploy/k8s/overlays/ci is rendered with `kubectl kustomize`, and its commands
run as they are: the sink's, the workers' and the master Job's shell (Locust,
then `loadkit report`, then `loadkit serve`), each in a network namespace of
its own on one bridge, as pods on one cluster network. Each namespace's
/etc/hosts (`ip netns exec` reads /etc/netns/NAME/hosts) names the others as
the Services do: loadkit-master, loadkit-sink. Only what a pod would find
elsewhere is changed: the ConfigMap's folder (a temporary folder instead of
/etc/loadkit), the run time (5 s instead of a minute) and the serving time.

After the run the results are fetched over HTTP from outside the master's
namespace, as `kubectl port-forward` would, and their counts must equal the
sink's; the master's exit code must be the run's verdict. A worker killed
mid-run (a pod deleted) is a lost worker: `no_worker_lost` fails and the Job
exits 3.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import cannot_run, find_peer
from tests.integration.test_distributed_separate_hosts import (
    _free_subnet,
    _require_namespaces,
)

pytestmark = [pytest.mark.peer("ip"), pytest.mark.peer("kubectl"), pytest.mark.slow]

try:
    import yaml
except ImportError:
    yaml = None


ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = "/etc/loadkit"
RUN_TIME = "8s"
SERVE_FOR = "20s"
SERVE_PORT = 8089  # in the master's own namespace, as in its pod: nothing else listens there


def _render_ci() -> list[dict]:
    if yaml is None:
        cannot_run("pyyaml is not installed (pip install pyyaml, or the test extra)")
    kubectl = find_peer("kubectl")
    done = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / "ci")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _container(objects: list[dict], kind: str, name: str) -> dict:
    (owner,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    (container,) = owner["spec"]["template"]["spec"]["containers"]
    return container


class Network:
    """A bridge in the root namespace and one namespace per pod, each with a veth on the bridge."""

    def __init__(self, ip: str):
        self.ip = ip
        self.tag = f"{os.getpid() % 100000:05d}{random.randrange(16 ** 3):03x}"  # unique: tests run in parallel
        self.octet = _free_subnet(ip)
        self.bridge = f"lkb{self.tag}"
        self.namespaces: list[str] = []
        self.veths: list[str] = []
        self.addresses: dict[str, str] = {}

    def sh(self, *argv: str) -> None:
        done = subprocess.run([self.ip, *argv], check=False, capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, f"ip {' '.join(argv)}: {done.stderr.strip()}"

    def up(self, pods: list[str]) -> None:
        self.sh("link", "add", self.bridge, "type", "bridge")
        self.sh("addr", "add", f"10.203.{self.octet}.1/24", "dev", self.bridge)
        self.sh("link", "set", self.bridge, "up")
        for index, pod in enumerate(pods):
            namespace, host_side, pod_side = f"lk{self.tag}{index}", f"lk{self.tag}{index}h", f"lk{self.tag}{index}p"
            self.sh("netns", "add", namespace)
            self.namespaces.append(namespace)
            self.sh("link", "add", host_side, "type", "veth", "peer", "name", pod_side)
            self.veths.append(host_side)
            self.sh("link", "set", pod_side, "netns", namespace)
            self.sh("link", "set", host_side, "master", self.bridge)
            self.sh("link", "set", host_side, "up")
            address = f"10.203.{self.octet}.{index + 2}"
            self.sh("-n", namespace, "addr", "add", f"{address}/24", "dev", pod_side)
            self.sh("-n", namespace, "link", "set", pod_side, "up")
            self.sh("-n", namespace, "link", "set", "lo", "up")
            self.addresses[pod] = address
        hosts = "127.0.0.1 localhost\n" + "".join(f"{a} {pod}\n" for pod, a in self.addresses.items())
        for namespace in self.namespaces:
            folder = Path("/etc/netns") / namespace
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts").write_text(hosts)

    def prefix(self, pod: str) -> list[str]:
        return [self.ip, "netns", "exec", self.namespaces[list(self.addresses).index(pod)]]

    def down(self) -> None:
        for host_side in self.veths:  # deleting one end of a veth deletes its peer too
            subprocess.run([self.ip, "link", "del", host_side], check=False, capture_output=True, timeout=10)
        subprocess.run([self.ip, "link", "del", self.bridge], check=False, capture_output=True, timeout=10)
        for namespace in self.namespaces:
            subprocess.run([self.ip, "netns", "del", namespace], check=False, capture_output=True, timeout=10)
            shutil.rmtree(Path("/etc/netns") / namespace, ignore_errors=True)


def _wait_for_line(process: subprocess.Popen, needle: str, timeout: float) -> list[str]:
    """Lines of `process`'s stdout up to the first holding `needle` (pipe read line by line)."""
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"no {needle!r} within {timeout}s: {''.join(lines)[-2000:]}")


class Lines(threading.Thread):
    """Collects a pipe's lines; `wait_for` blocks until one holds a needle."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe, self.lines, self.changed = pipe, [], threading.Condition()
        self.start()

    def run(self):
        for line in self.pipe:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, needle: str, timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: any(needle in line for line in self.lines), timeout):
                raise AssertionError(f"no {needle!r} within {timeout}s: {''.join(self.lines)[-2000:]}")


@pytest.mark.parametrize("kill_a_worker", [False, True], ids=["all-workers", "a-worker-killed"])
def test_master_workers_and_sink_in_their_own_namespaces_and_results_fetched_over_http(tmp_path, kill_a_worker):
    ip = _require_namespaces()
    objects = _render_ci()
    (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
    master = _container(objects, "Job", "loadkit-master")
    worker = _container(objects, "Deployment", "loadkit-worker")
    sink = _container(objects, "Deployment", "loadkit-sink")
    (workers,) = [o["spec"]["replicas"] for o in objects if o["metadata"]["name"] == "loadkit-worker"]

    # The ConfigMap as the pods mount it, at a temporary folder.
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for name, text in config["data"].items():
        (config_dir / name).write_text(text.replace(CONFIG_DIR, str(config_dir)))

    def here(argv: list[str]) -> list[str]:
        argv = [arg.replace(CONFIG_DIR, str(config_dir)) for arg in argv]
        return [f"--run-time={RUN_TIME}" if arg.startswith("--run-time=") else arg for arg in argv]

    # `locust` and `loadkit` as the image has them, on this tree's code.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command, module in (("locust", "locust"), ("loadkit", "loadkit")):
        (bin_dir / command).write_text(f'#!/bin/sh\nexec {sys.executable} -m {module} "$@"\n')
        (bin_dir / command).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "LOADKIT_SERVE_FOR": SERVE_FOR}
    master_dir, sink_stats = tmp_path / "master", tmp_path / "sink-stats.json"
    (master_dir / "reports").mkdir(parents=True)

    network = Network(ip)
    processes: list[subprocess.Popen] = []
    try:
        network.up(["loadkit-master", "loadkit-sink", *(f"worker-{n}" for n in range(workers))])
        sink_argv = [*sink["command"][:2], "--stats-json", str(sink_stats), *sink["command"][2:]]
        sink_process = subprocess.Popen([*network.prefix("loadkit-sink"), *sink_argv], env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        processes.append(sink_process)
        _wait_for_line(sink_process, "listening on", 30)

        master_process = subprocess.Popen([*network.prefix("loadkit-master"), *master["command"], *here(master["args"])],
                                          cwd=master_dir, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        processes.append(master_process)
        master_log = Lines(master_process.stderr)
        worker_processes = [
            subprocess.Popen([*network.prefix(f"worker-{n}"), *worker["command"], *here(worker["args"])],
                             cwd=tmp_path, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for n in range(workers)]
        processes += worker_processes
        if kill_a_worker:  # as a deleted pod: no goodbye
            master_log.wait_for("Sending spawn jobs", 120)
            time.sleep(4)  # 20 users at 10/s: all spawned, and a few reports in
            worker_processes[-1].kill()

        # The run, then the report, then the results served on 8089 of the master's namespace.
        _wait_for_line(master_process, "loadkit serve: serving", 150)
        url = f"http://{network.addresses['loadkit-master']}:{SERVE_PORT}"
        with urllib.request.urlopen(f"{url}/results.tar.gz", timeout=30) as answer:
            archive = answer.read()
        with urllib.request.urlopen(f"{url}/report.html", timeout=30) as answer:
            report = answer.read()
        job_exit = master_process.wait(timeout=60)
        for process in worker_processes[:-1] if kill_a_worker else worker_processes:
            assert process.wait(timeout=30) == 0, process.stderr.read()[-2000:]
        sink_process.send_signal(signal.SIGTERM)
        assert sink_process.wait(timeout=15) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        network.down()

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        files = {member.name.split("/", 1)[1]: tar.extractfile(member).read()
                 for member in tar.getmembers() if member.isfile()}
    assert files["report.html"] == report
    run = json.loads(files["run.json"])
    total = next(row for row in csv.DictReader(io.StringIO(files["locust_stats.csv"].decode()))
                 if row["Name"] == "Aggregated")
    stats = json.loads(sink_stats.read_text())
    events = [json.loads(line) for line in files["events.jsonl"].decode().splitlines()]
    assert run["target"] == "smtp://loadkit-sink:2525"
    # A worker killed before its first report (every 3 s) has no share.
    assert len(run["worker_shares"]) in ((workers - 1, workers) if kill_a_worker else (workers,)), (run, events)
    # The Job's exit code is the run's verdict: 0 when every threshold held, 3 when one failed.
    verdicts = json.loads(files["verdicts.json"])
    (worker_lost,) = [v for v in verdicts["verdicts"] if v["expression"] == "no_worker_lost"]
    assert job_exit == (0 if verdicts["passed"] else 3), verdicts
    if not kill_a_worker:
        assert worker_lost["passed"]
        assert int(total["Request Count"]) == run["requests"] == stats["messages"] == sum(run["worker_shares"].values()) > 0
    else:
        assert not worker_lost["passed"] and job_exit == 3
        assert [event["kind"] for event in events].count("worker_lost") == 1, events
        # What the lost worker reported before it died is kept; what it sent since its
        # last report reached the sink but not the master.
        assert stats["messages"] >= run["requests"] == sum(run["worker_shares"].values()) > 0
