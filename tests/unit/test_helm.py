"""deploy/helm/values.yaml fits the Locust Helm chart it is written for, without Helm or a cluster.

Every key of the values must be a key of the chart's own values.yaml (a
misspelled key would be silently ignored by Helm); the keys are copied below
from the chart's version named in CHART. The sink, which the values add as
`extraObjects`, must pass Kubernetes' strict schema; the Locust and loadkit
options must parse as in the pods, and name the sink and the workers' count.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest

from loadkit.cli import build_parser
from tests.unit.test_k8s import (  # noqa: F401 (_schemas_and_yaml: skip, or fail under CI, without the test extra)
    KUBERNETES_VERSION,
    _parse_locust,
    _schemas_and_yaml,
    kubernetes_validate,
    package_version,
    yaml,
)

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
CHART = "deliveryhero/locust 0.35.0 (github.com/deliveryhero/helm-charts, stable/locust/values.yaml at 17aac33)"

# Every key of that values.yaml, as a dotted path.
CHART_KEYS = frozenset({
    'loadtest', 'loadtest.name', 'loadtest.locust_locustfile', 'loadtest.locust_locustfile_path',
    'loadtest.locust_locustfile_configmap', 'loadtest.locust_lib_configmap', 'loadtest.locust_host',
    'loadtest.pip_packages', 'loadtest.pip_requirementsfile_configmap', 'loadtest.locust_requirementsfile_path',
    'loadtest.pip_requirementsfile', 'loadtest.environment', 'loadtest.environment_secret',
    'loadtest.environment_external_secret', 'loadtest.environment_load_from_secrets',
    'loadtest.mount_external_secret', 'loadtest.headless', 'loadtest.tags', 'loadtest.excludeTags',
    'loadtest.locustCmd', 'image', 'image.repository', 'image.tag', 'image.pullPolicy', 'service', 'service.type',
    'service.annotations', 'service.extraLabels', 'service.loadBalancerIP', 'service.port', 'service.targetPort',
    'master', 'master.image', 'master.logLevel', 'master.replicas', 'master.revisionHistoryLimit',
    'master.terminationGracePeriodSeconds', 'master.lifecycle', 'master.resources',
    'master.serviceAccountAnnotations', 'master.deploymentAnnotations', 'master.envs_include_default',
    'master.environment', 'master.args', 'master.command', 'master.initContainers', 'master.strategy',
    'master.strategy.type', 'master.pdb', 'master.pdb.enabled', 'master.auth', 'master.auth.enabled',
    'master.auth.username', 'master.auth.password', 'master.extraPorts', 'master.readinessProbe',
    'master.readinessProbe.initialDelaySeconds', 'master.readinessProbe.periodSeconds',
    'master.readinessProbe.timeoutSeconds', 'master.readinessProbe.failureThreshold',
    'master.readinessProbe.successThreshold', 'master.readinessProbe.httpGet', 'master.readinessProbe.httpGet.path',
    'master.readinessProbe.httpGet.port', 'master.readinessProbe.httpGet.scheme', 'master.livenessProbe',
    'master.startupProbe', 'master.restartPolicy', 'master.nodeSelector', 'master.tolerations', 'master.affinity',
    'master.extraVolumes', 'master.extraVolumeMounts', 'worker', 'worker.image', 'worker.logLevel',
    'worker.replicas', 'worker.revisionHistoryLimit', 'worker.pdb', 'worker.pdb.enabled', 'worker.hpa',
    'worker.hpa.enabled', 'worker.hpa.minReplicas', 'worker.hpa.maxReplicas',
    'worker.hpa.targetCPUUtilizationPercentage', 'worker.keda', 'worker.keda.enabled',
    'worker.keda.pollingInterval', 'worker.keda.cooldownPeriod', 'worker.keda.triggers', 'worker.resources',
    'worker.ports', 'worker.serviceAccountAnnotations', 'worker.deploymentAnnotations',
    'worker.envs_include_default', 'worker.environment', 'worker.args', 'worker.command', 'worker.initContainers',
    'worker.strategy', 'worker.strategy.type', 'worker.restartPolicy', 'worker.nodeSelector', 'worker.tolerations',
    'worker.affinity', 'worker.extraVolumes', 'worker.extraVolumeMounts', 'nameOverride', 'fullnameOverride',
    'imagePullSecrets', 'hostAliases', 'podSecurityContext', 'securityContext', 'ingress', 'ingress.enabled',
    'ingress.className', 'ingress.annotations', 'ingress.hosts', 'ingress.tls', 'extraConfigMaps', 'nodeSelector',
    'tolerations', 'affinity', 'extraLabels', 'extraObjects'
})
# Keys whose default is an empty map: what goes under them is free (resources, nodeSelector, ...).
CHART_FREE_FORM = frozenset({
    'loadtest.environment', 'loadtest.environment_secret', 'loadtest.environment_external_secret',
    'loadtest.mount_external_secret', 'service.annotations', 'service.extraLabels', 'master.lifecycle',
    'master.resources', 'master.serviceAccountAnnotations', 'master.deploymentAnnotations', 'master.environment',
    'master.livenessProbe', 'master.startupProbe', 'master.nodeSelector', 'master.affinity', 'worker.resources',
    'worker.ports', 'worker.serviceAccountAnnotations', 'worker.deploymentAnnotations', 'worker.environment',
    'worker.nodeSelector', 'worker.affinity', 'podSecurityContext', 'securityContext', 'ingress.annotations',
    'extraConfigMaps', 'nodeSelector', 'affinity', 'extraLabels'
})


def unknown_keys(values: dict, prefix: str = "") -> list[str]:
    """The dotted keys of `values` the chart does not have."""
    unknown = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if path not in CHART_KEYS:
            unknown.append(path)
        elif isinstance(value, dict) and path not in CHART_FREE_FORM:
            unknown += unknown_keys(value, path)
    return unknown


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def test_every_key_is_a_key_of_the_chart(values):
    assert unknown_keys(values) == [], f"not in {CHART}"


def test_a_misspelled_key_is_caught(values):
    wrong = copy.deepcopy(values)
    wrong["worker"]["replica"] = wrong["worker"].pop("replicas")
    wrong["master"]["resources"]["requests"]["cpu"] = "2"  # free-form below a known key: fine
    wrong["loadtest"]["headles"] = True
    assert unknown_keys(wrong) == ["loadtest.headles", "worker.replica"]


def test_the_sink_objects_render_as_they_are_and_pass_the_strict_schema(values):
    objects = values["extraObjects"]
    # The chart passes each through Helm's `tpl`: without template actions it renders them unchanged.
    assert "{{" not in yaml.safe_dump(objects)
    assert sorted(o["kind"] for o in objects) == ["Deployment", "Service"]
    for manifest in objects:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    wrong = copy.deepcopy(objects[0])
    wrong["spec"]["replica"] = wrong["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


def test_image_sink_and_ports_line_up(values):
    image = f"{values['image']['repository']}:{values['image']['tag']}"
    assert image == f"loadkit:{package_version()}"
    sink = next(o for o in values["extraObjects"] if o["kind"] == "Deployment")
    service = next(o for o in values["extraObjects"] if o["kind"] == "Service")
    (container,) = sink["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) <= set(container["resources"]["limits"])
    labels = sink["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    argv = container["command"]
    endpoint = build_parser(argv[1:])[0].parse_args(argv[1:]).endpoint
    host, _, port = endpoint.rpartition(":")
    assert host == "0.0.0.0"  # all interfaces of its own pod
    (service_port,) = service["spec"]["ports"]
    by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert by_name.get(service_port["targetPort"], service_port["targetPort"]) == int(port)
    assert values["loadtest"]["locust_host"] == f"smtp://{service['metadata']['name']}:{service_port['port']}"
    assert service["spec"]["type"] == values["service"]["type"] == "ClusterIP"
    assert not values.get("ingress", {}).get("enabled")


def test_locust_options_parse_and_match_the_workers(values, tmp_path):
    loadtest, master, worker = values["loadtest"], values["master"], values["worker"]
    # The image has WORKDIR /app and its locustfiles in /app/locustfiles.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "WORKDIR /app" in dockerfile and "COPY locustfiles ./locustfiles" in dockerfile
    assert loadtest["locust_locustfile_path"] == "/app/locustfiles" and not loadtest["locust_locustfile_configmap"]
    locustfile = ROOT / "locustfiles" / loadtest["locust_locustfile"]
    assert locustfile.is_file()
    # What the chart passes: --master, master.args, --headless; the locustfile and host come from its env.
    from_env = [f"--locustfile={locustfile}", f"--host={loadtest['locust_host']}"]
    argv = {"master": ["--master", *master["args"], "--headless", *from_env],
            "worker": ["--worker", "--master-host=loadkit-locust", *from_env]}
    parsed = _parse_locust(locustfile, argv, tmp_path)
    for role, options in parsed.items():
        assert "error" not in options, f"{role}: {options['error']}"
    options = parsed["master"]
    assert loadtest["headless"] and options["headless"]
    assert options["expect_workers"] == worker["replicas"]
    assert options["enable_rebalancing"] and "no_worker_lost" in options["check"]
    assert options["results"] == "reports"
    assert not worker["hpa"]["enabled"]
    assert master["readinessProbe"] is None  # the chart's probe needs a web UI a headless master lacks
    for role in ("master", "worker"):
        resources = values[role]["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) <= set(resources["limits"])


def test_the_master_script_reports_then_serves_for_as_long_as_the_release_lives(values):
    command = values["master"]["command"]
    assert command[:2] == ["sh", "-c"]
    done = subprocess.run(["sh", "-n", "-c", command[2]], check=False, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    lines = command[2].strip().splitlines()
    assert lines[0] == 'locust "$@"; code=$?'
    assert lines[-1].startswith("exec loadkit serve ")  # SIGTERM at uninstall reaches it
    serve = lines[-1].split()[1:]
    options = build_parser(serve[1:])[0].parse_args(serve[1:])
    assert (options.results, options.bind, options.port, options.duration) == ("reports", "0.0.0.0", 8089, None)
    assert values["loadtest"]["locustCmd"] == "locust"
