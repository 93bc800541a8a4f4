"""docker-compose.yml and Dockerfile agree with what loadkit and Locust accept.

There is no Docker engine to run the stack here: Debian's `docker-compose
config` validates the file (and interpolates its variables), its output is
read as data, and every command a service runs is parsed by the parser that
would parse it in the container (Locust's, with loadkit's --results/--check;
loadkit's own). Names, ports and paths must line up across services.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.urls import parse_listen
from tests.conftest import find_peer

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"master", "headless", "worker", "sink", "postfix", "apache"}

# Parses each service's locust argv with Locust's parser plus loadkit's options;
# prints {service: options-as-dict} or {service: {"error": ...}}.
_LOCUST_PARSE = """
import contextlib, io, json, sys
import loadkit.plugin  # adds --results, --check and the other loadkit options, as importing loadkit.users does
from locust.argument_parser import get_parser
from loadkit import thresholds
result = {}
for service, argv in json.loads(sys.argv[1]).items():
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            options = get_parser().parse_args(argv)
        thresholds.parse_all(options.check)
        result[service] = {k: v for k, v in vars(options).items() if isinstance(v, (str, int, float, bool, list, type(None)))}
    except SystemExit:
        result[service] = {"error": errors.getvalue().strip()}
    except thresholds.ThresholdError as error:
        result[service] = {"error": str(error)}
print(json.dumps(result))
"""


def _compose_config(*options: str, env: dict | None = None) -> dict:
    """`docker-compose config` as data, read by the Python that docker-compose itself runs on (it has PyYAML)."""
    compose = find_peer("docker-compose")
    done = subprocess.run([compose, "-f", str(ROOT / "docker-compose.yml"), *options, "config"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    shebang = Path(compose).read_text(errors="replace").splitlines()[0]
    interpreter = shlex.split(shebang[2:])[0] if shebang.startswith("#!") else sys.executable
    to_json = subprocess.run([interpreter, "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
                             input=done.stdout, capture_output=True, text=True, timeout=30)
    assert to_json.returncode == 0, to_json.stderr
    return json.loads(to_json.stdout)["services"]


@pytest.fixture(scope="module")
def services():
    return _compose_config()


def _argv(service: dict) -> list[str]:
    """A service's command; a wrapper script from docker/ is checked and stripped."""
    argv = list(service["command"])
    if argv[0].startswith("docker/"):
        wrapper = ROOT / argv[0]
        assert wrapper.is_file() and os.access(wrapper, os.X_OK), f"{argv[0]} is not an executable script"
        argv = argv[1:]
    return argv


def _parse_locust(commands: dict[str, list[str]], tmp_path) -> dict:
    for service, argv in commands.items():
        locustfile = argv[argv.index("-f") + 1]
        assert (ROOT / locustfile).is_file(), f"{service}: {locustfile} is not in the repository"
    done = subprocess.run([sys.executable, "-c", _LOCUST_PARSE, json.dumps(commands)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    for service, options in parsed.items():
        assert "error" not in options, f"{service}: {options['error']}"
    return parsed


@pytest.mark.peer("docker-compose")
def test_compose_file_is_valid_and_names_every_service(services):
    assert set(services) == SERVICES
    assert services["headless"]["profiles"] == ["headless"]
    assert all("profiles" not in services[name] for name in SERVICES - {"headless"})
    # Scalable: no fixed container name and no host port, or a second worker could not start.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    for name in ("master", "headless", "worker", "sink"):
        assert any(volume.endswith((":/app/reports:rw", ":/app/reports"))
                   for volume in _volumes(services[name])), f"{name}: results do not reach ./reports on the host"


def _volumes(service: dict) -> list[str]:
    return [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service.get("volumes", ())]


@pytest.mark.peer("docker-compose")
def test_build_targets_exist_in_the_dockerfile(services):
    targets = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M | re.I))
    for name, service in services.items():
        assert service["build"]["target"] in targets, f"{name}: no target {service['build']['target']!r}"
    for copied in re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)", (ROOT / "Dockerfile").read_text(), re.M):
        assert (ROOT / copied).exists(), f"Dockerfile copies {copied}, which is not in the repository"


@pytest.mark.peer("docker-compose")
def test_commands_parse_and_ports_line_up(services, tmp_path):
    argv = {name: _argv(services[name]) for name in ("master", "headless", "worker")}
    assert all(one[0] == "locust" for one in argv.values())
    options = _parse_locust({name: one[1:] for name, one in argv.items()}, tmp_path)
    master, headless, worker = options["master"], options["headless"], options["worker"]
    assert master["master"] and headless["master"] and worker["worker"]
    assert headless["headless"] and headless["expect_workers"] >= 1 and "no_worker_lost" in headless["check"]
    assert headless["run_time"] and headless["num_users"] >= 1

    sink_argv = _argv(services["sink"])
    assert sink_argv[0] == "loadkit"
    from loadkit.cli import build_parser

    parser, _ = build_parser(sink_argv[1:])
    sink = parser.parse_args(sink_argv[1:])
    listen = parse_listen(sink.endpoint)  # what the sink does with it at start
    sink_host, _, sink_port = sink.endpoint.rpartition(":")
    assert (listen.host, str(listen.port)) == (sink_host, sink_port)
    assert sink_host == "0.0.0.0"  # all interfaces of the sink's own container, on purpose
    assert f"{sink_port}" in services["sink"]["expose"]

    # The masters load the sink by its service name and port; the workers find the master.
    for name in ("master", "headless"):
        assert options[name]["host"] == f"smtp://sink:{sink_port}"
        assert str(options[name]["master_bind_port"]) in services[name]["expose"]
        assert options[name]["results"] == "reports" and services[name]["working_dir"] == "/app"
    assert worker["master_host"] == "master" and worker["master_port"] == master["master_bind_port"]
    assert worker["locustfile"] == master["locustfile"] == headless["locustfile"]
    assert master["web_port"] == 8089
    published = [(p["target"], p.get("published"), p.get("host_ip")) if isinstance(p, dict) else p
                 for p in services["master"]["ports"]]
    assert published in (["127.0.0.1:8089:8089/tcp"], [(8089, 8089, "127.0.0.1")], [(8089, "8089", "127.0.0.1")])

    # Postfix relays to the sink's service name and port.
    assert services["postfix"]["environment"]["LOADKIT_RELAY"] == f"[sink]:{sink_port}"
    assert f"[sink]:{sink_port}" in (ROOT / "docker" / "postfix-entrypoint").read_text()
    assert "25" in services["postfix"]["expose"]


@pytest.mark.peer("docker-compose")
def test_headless_profile_follows_its_variables_and_workers_find_it(tmp_path):
    services = _compose_config(env={"WORKERS": "8", "RUN_TIME": "30s", "LOADKIT_MASTER_HOST": "headless"})
    options = _parse_locust({name: _argv(services[name])[1:] for name in ("headless", "worker")}, tmp_path)
    assert options["headless"]["expect_workers"] == 8 and options["headless"]["run_time"] == 30
    assert options["worker"]["master_host"] == "headless"


def test_helper_scripts_are_valid_shell():
    for script in ("postfix-entrypoint", "headless"):
        done = subprocess.run(["sh", "-n", str(ROOT / "docker" / script)], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
    status = (ROOT / "docker" / "apache-status.conf").read_text()
    assert "SetHandler server-status" in status and "ExtendedStatus On" in status
