"""deploy/k8s/ renders, validates and means what the README says, without a cluster.

Each overlay is rendered with `kubectl kustomize`; every object passes
kubernetes-validate's strict schema (a misspelled field fails); then the
semantics are checked: the master is a Job that runs once and whose status is
the run's verdict, it expects as many workers as the Deployment has, every
Locust and loadkit option parses with the parser that will read it in the
pod, the ports and names line up, the image is the package's version, and
nothing is exposed outside the cluster. The master's shell runs for real,
with a stand-in for `locust`, to show that its exit code survives the report
and the serving.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.cli import build_parser
from tests.conftest import cannot_run, find_peer

try:  # the test extra: Kubernetes' schemas offline, and a YAML reader
    import kubernetes_validate
    import yaml
except ImportError as error:
    kubernetes_validate = yaml = None
    MISSING = f"{error.name} is not installed (pip install kubernetes-validate pyyaml, or the test extra)"

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("small", "ci")
KUBERNETES_VERSION = "1.32"  # the kubectl this is rendered with; its schemas come with kubernetes-validate
CONFIG_DIR = "/etc/loadkit"  # where the pods mount the ConfigMap (locust.conf and the locustfiles)
EXPOSED_TYPES = {"NodePort", "LoadBalancer"}

# Parses argv lists with Locust's parser after importing the locustfile the pods
# run (its imports add loadkit's options, --results and --check, as in the pod);
# an option must be spelled in full (argparse would take a prefix); prints
# {name: options} or {name: {"error": ...}}.
_LOCUST_PARSE = """
import contextlib, importlib.util, io, json, sys
locustfile = sys.argv[1]
sys.path.insert(0, locustfile.rsplit("/", 1)[0])
spec = importlib.util.spec_from_file_location("locustfile", locustfile)
spec.loader.exec_module(importlib.util.module_from_spec(spec))
from locust.argument_parser import get_parser
from loadkit import thresholds
result = {}
for name, argv in json.loads(sys.argv[2]).items():
    errors = io.StringIO()
    parser = get_parser()
    unknown = [a for a in argv if a.startswith("-") and a.split("=", 1)[0] not in parser._option_string_actions]
    if unknown:
        result[name] = {"error": f"not an option: {unknown[0]}"}
        continue
    try:
        with contextlib.redirect_stderr(errors):
            options = parser.parse_args(argv)
        thresholds.parse_all(options.check)
        result[name] = {k: v for k, v in vars(options).items() if isinstance(v, (str, int, float, bool, list, type(None)))}
    except SystemExit:
        result[name] = {"error": errors.getvalue().strip()}
    except thresholds.ThresholdError as error:
        result[name] = {"error": str(error)}
print(json.dumps(result))
"""


@pytest.fixture(autouse=True, scope="module")  # before the module-scoped fixtures that read YAML
def _schemas_and_yaml():
    if yaml is None or kubernetes_validate is None:
        cannot_run(MISSING)


def render(path: Path) -> list[dict]:
    kubectl = find_peer("kubectl")
    done = subprocess.run([kubectl, "kustomize", str(path)], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, render(K8S / "overlays" / request.param)


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(pod_owner: dict) -> dict:
    (only,) = pod_owner["spec"]["template"]["spec"]["containers"]
    return only


def configmap(objects: list[dict]) -> dict:
    (found,) = [o for o in objects if o["kind"] == "ConfigMap"]
    return found


def package_version() -> str:
    """[project] version in pyproject.toml (read without tomllib, which Python 3.10 lacks)."""
    match = re.search(r'^\[project\]$.*?^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE | re.DOTALL)
    assert match, "no [project] version in pyproject.toml"
    return match[1]


def validate(objects: list[dict]) -> None:
    for manifest in objects:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.peer("kubectl")
def test_every_rendered_object_passes_the_strict_schema(overlay):
    _, objects = overlay
    assert {o["kind"] for o in objects} == {"Namespace", "ConfigMap", "Job", "Service", "Deployment"}
    validate(objects)


@pytest.mark.peer("kubectl")
def test_a_misspelled_field_fails_the_schema(overlay):
    _, objects = overlay
    job = copy.deepcopy(one(objects, "Job", "loadkit-master"))
    job["spec"]["backofLimit"] = job["spec"].pop("backoffLimit")
    with pytest.raises(kubernetes_validate.ValidationError, match="backofLimit"):
        validate([job])
    worker = copy.deepcopy(one(objects, "Deployment", "loadkit-worker"))
    container(worker)["resource"] = container(worker).pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError, match="resource"):
        validate([worker])


@pytest.mark.peer("kubectl")
def test_the_master_is_a_job_run_once_whose_status_is_the_verdict(overlay):
    _, objects = overlay
    job = one(objects, "Job", "loadkit-master")
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    master = container(job)
    assert master["command"][:2] == ["sh", "-c"]
    script = master["command"][2]
    assert script.splitlines()[0] == 'locust "$@"; code=$?'  # Locust runs with the Job's args
    assert script.rstrip().splitlines()[-1] == 'exit "$code"'


@pytest.mark.peer("kubectl")
def test_namespace_labels_and_image(overlay):
    _, objects = overlay
    (namespace,) = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    assert all(o["metadata"].get("namespace") == namespace for o in objects if o["kind"] != "Namespace")
    owners = [o for o in objects if o["kind"] in ("Job", "Deployment")]
    assert len(owners) == 3
    for owner in owners:
        assert container(owner)["image"] == f"loadkit:{package_version()}", owner["metadata"]["name"]
        resources = container(owner)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])


@pytest.mark.peer("kubectl")
def test_nothing_is_exposed_outside_the_cluster(overlay):
    _, objects = overlay
    for service in (o for o in objects if o["kind"] == "Service"):
        assert service["spec"].get("type", "ClusterIP") not in EXPOSED_TYPES, service["metadata"]["name"]
        assert all("nodePort" not in port for port in service["spec"]["ports"])
    assert not [o for o in objects if o["kind"] in ("Ingress", "Route", "Gateway", "HTTPRoute")]
    for owner in (o for o in objects if o["kind"] in ("Job", "Deployment")):
        pod = owner["spec"]["template"]["spec"]
        assert not pod.get("hostNetwork") and all("hostPort" not in p for p in container(owner).get("ports", ()))


def _selects(service: dict, owner: dict) -> bool:
    labels = owner["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in service["spec"]["selector"].items())


def _ports(service: dict, owner: dict) -> dict[int, int]:
    """Service port -> the container port it reaches (named target ports resolved)."""
    by_name = {p["name"]: p["containerPort"] for p in container(owner).get("ports", ())}
    return {p["port"]: by_name.get(p["targetPort"], p["targetPort"]) for p in service["spec"]["ports"]}


def _parse_locust(locustfile: Path, commands: dict[str, list[str]], cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _LOCUST_PARSE, str(locustfile), json.dumps(commands)],
                          check=False, capture_output=True, text=True, timeout=90, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _locally(argv: list[str], config: Path) -> list[str]:
    return [f"--config={config}" if arg == f"--config={CONFIG_DIR}/locust.conf" else arg for arg in argv]


@pytest.mark.peer("kubectl")
def test_options_parse_and_names_ports_and_counts_line_up(overlay, tmp_path):
    name, objects = overlay
    job, workers = one(objects, "Job", "loadkit-master"), one(objects, "Deployment", "loadkit-worker")
    sink, master_service = one(objects, "Deployment", "loadkit-sink"), one(objects, "Service", "loadkit-master")
    sink_service = one(objects, "Service", "loadkit-sink")
    data = configmap(objects)["data"]

    # The ConfigMap holds every locustfile of the repository, as it is, and locust.conf.
    locustfiles = sorted(path.name for path in (ROOT / "locustfiles").glob("*.py"))
    assert sorted(set(data) - {"locust.conf"}) == locustfiles
    assert all(data[file] == (ROOT / "locustfiles" / file).read_text() for file in locustfiles)
    for owner in (job, workers):
        pod = owner["spec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in container(owner)["volumeMounts"]}
        volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == configmap(objects)["metadata"]["name"])
        assert mounts[volume["name"]] == CONFIG_DIR
        assert f"--config={CONFIG_DIR}/locust.conf" in container(owner)["args"]

    # Every option as Locust (with loadkit's options) parses it, locust.conf included.
    config = tmp_path / "locust.conf"
    config.write_text(data["locust.conf"])
    master_argv, worker_argv = container(job)["args"], container(workers)["args"]
    assert container(workers)["command"] == ["locust"]
    locustfile = next(line.split("=", 1)[1].strip() for line in data["locust.conf"].splitlines()
                      if line.split("=", 1)[0].strip() == "locustfile")
    assert locustfile.startswith(f"{CONFIG_DIR}/") and locustfile.rsplit("/", 1)[1] in locustfiles
    parsed = _parse_locust(ROOT / "locustfiles" / locustfile.rsplit("/", 1)[1],
                           {"master": _locally(master_argv, config), "worker": _locally(worker_argv, config)}, tmp_path)
    for role, options in parsed.items():
        assert "error" not in options, f"{name} {role}: {options['error']}"
    master, worker = parsed["master"], parsed["worker"]
    assert master["master"] and master["headless"] and not master["worker"]
    assert worker["worker"] and not worker["master"]
    assert master["locustfile"] == worker["locustfile"] == locustfile

    # Headless, expecting exactly the workers the Deployment runs, with thresholds.
    assert master["expect_workers"] == workers["spec"]["replicas"] >= 1, name
    assert master["num_users"] >= workers["spec"]["replicas"] and master["run_time"] > 0
    assert "no_worker_lost" in master["check"] and len(master["check"]) >= 2
    assert master["enable_rebalancing"]  # workers added mid-run get users too
    assert master["results"] == "reports"

    # Workers find the master through its Service, which reaches 5557 and 8089 of the Job's pod.
    assert worker["master_host"] == master_service["metadata"]["name"]
    assert _selects(master_service, job) and not _selects(master_service, workers)
    master_ports = _ports(master_service, job)
    assert master_ports == {5557: 5557, 8089: 8089}
    assert worker["master_port"] == master["master_bind_port"] == 5557
    assert master_service["spec"]["publishNotReadyAddresses"]  # ready = results served, after the run

    # The load goes to the sink's Service, which reaches the sink's port.
    assert _selects(sink_service, sink)
    sink_argv = container(sink)["command"]
    assert sink_argv[0] == "loadkit"
    sink_options = build_parser(sink_argv[1:])[0].parse_args(sink_argv[1:])
    sink_host, _, sink_port = sink_options.endpoint.rpartition(":")
    assert sink_host == "0.0.0.0"  # all interfaces of its own pod, on purpose
    (sink_service_port,) = _ports(sink_service, sink).items()
    assert sink_service_port == (int(sink_port), int(sink_port))
    assert master["host"] == f"smtp://{sink_service['metadata']['name']}:{sink_port}"


@pytest.mark.parametrize("mistake, says", [
    ("--expect-worker=2", "--expect-worker"),
    ("--expect-workers-max=10", "--expect-workers-max"),
    ("--chek=p95<250ms", "--chek"),
    ("--check=p95<<250ms", "p95<<250ms"),
    ("--users=many", "--users"),
])
def test_a_misspelled_option_or_threshold_fails(mistake, says, tmp_path):
    (tmp_path / "locust.conf").write_text("host = smtp://loadkit-sink:2525\n")
    argv = [f"--config={tmp_path / 'locust.conf'}", "--master", "--headless", mistake]
    parsed = _parse_locust(ROOT / "locustfiles" / "smtp.py", {"master": argv}, tmp_path)
    assert says in parsed["master"].get("error", ""), parsed["master"]


@pytest.mark.peer("kubectl")
def test_the_master_serves_its_results_on_8089_for_a_stated_time(overlay):
    name, objects = overlay
    master = container(one(objects, "Job", "loadkit-master"))
    env = {e["name"]: e["value"] for e in master.get("env", ())}
    commands = [shlex.split(line) for line in master["command"][2].splitlines() if line.startswith("loadkit ")]
    (serve,) = [argv for argv in commands if argv[1] == "serve"]
    serve = [env["LOADKIT_SERVE_FOR"] if arg == "$LOADKIT_SERVE_FOR" else arg for arg in serve]
    options = build_parser(serve[1:])[0].parse_args(serve[1:])
    assert (options.bind, options.port, options.results) == ("0.0.0.0", 8089, "reports")
    from loadkit.arrivals import parse_timespan

    assert parse_timespan(options.duration) >= 60, name
    probe = master["readinessProbe"]["tcpSocket"]["port"]
    assert {p["name"]: p["containerPort"] for p in master["ports"]}.get(probe, probe) == 8089
    deadline = one(objects, "Job", "loadkit-master")["spec"].get("activeDeadlineSeconds")
    if deadline is not None:  # a deadline must leave room for the run and the serving
        run_time = next(a.split("=", 1)[1] for a in master["args"] if a.startswith("--run-time="))
        assert deadline > parse_timespan(run_time) + parse_timespan(options.duration) + 60


@pytest.fixture
def master_script(tmp_path) -> tuple[dict, dict]:
    """The ci overlay's master container, and a PATH where `locust` is a stand-in writing a results folder.

    Its `loadkit serve` listens on a free loopback port here, not on 8089 of all
    interfaces as in its pod: that is the one change made to the script.
    """
    master = copy.deepcopy(container(one(render(K8S / "overlays" / "ci"), "Job", "loadkit-master")))
    in_pod = "--bind 0.0.0.0 --port 8089"
    assert master["command"][2].count(in_pod) == 1
    master["command"][2] = master["command"][2].replace(in_pod, "--bind 127.0.0.1 --port 0")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "locust").write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "from pathlib import Path\n"
        "from tests.unit.test_report import write_results\n"
        "if os.environ['FAKE_WRITES'] == '1':\n"
        "    write_results(Path('reports/20260101-000000-smtp'), run_json={'locustfile': 'smtp.py'})\n"
        "print('locust', *sys.argv[1:])\n"
        "sys.exit(int(os.environ['FAKE_EXIT']))\n")
    (bin_dir / "loadkit").write_text(f"#!/bin/sh\nexec {sys.executable} -m loadkit \"$@\"\n")
    for stand_in in ("locust", "loadkit"):
        (bin_dir / stand_in).chmod(0o755)
    (tmp_path / "reports").mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "LOADKIT_SERVE_FOR": "1s"}
    return master, env


@pytest.mark.peer("kubectl")
@pytest.mark.parametrize("writes, locust_exit, job_exit", [
    ("1", 0, 0),   # passed: the Job completes
    ("1", 3, 3),   # a threshold failed: the Job fails, after the report is built and served
    ("0", 0, 1),   # no results folder: no report, the Job fails even though Locust said 0
])
def test_the_master_exits_with_the_runs_verdict_after_report_and_serving(master_script, tmp_path, writes,
                                                                         locust_exit, job_exit):
    master, env = master_script
    argv = [*master["command"], *master["args"]]
    assert shutil.which("sh")
    done = subprocess.run(argv, cwd=tmp_path, check=False, capture_output=True, text=True, timeout=120,
                          env={**env, "FAKE_WRITES": writes, "FAKE_EXIT": str(locust_exit)})
    assert done.returncode == job_exit, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == "locust " + " ".join(master["args"])
    if writes == "1":
        assert (tmp_path / "reports" / "20260101-000000-smtp" / "report.html").is_file()
        assert "loadkit serve: serving" in done.stdout and "loadkit serve: stopped" in done.stdout
