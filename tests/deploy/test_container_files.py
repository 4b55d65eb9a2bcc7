"""The deployment files: compose.yaml against the compose spec, the Kubernetes manifests against their schemas
(kubernetes-validate), and the promises they make to each other and to Herald (probes, drain, metric names)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import check_jsonschema
import jsonschema
import kubernetes_validate
import pytest
import yaml

from herald import metrics

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S = INFRA / "k8s"
KUBERNETES_VERSION = "1.30.0"


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path.name, document))
    return documents


def k8s_kind(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in k8s_documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def compose_schema() -> dict[str, Any]:
    # The compose specification's JSON schema as check-jsonschema (PyPI) vendors it from
    # https://github.com/compose-spec/compose-spec/blob/master/schema/compose-spec.json
    path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_compose_file_validates_against_the_compose_spec() -> None:
    document = yaml.safe_load((INFRA / "compose.yaml").read_text())
    jsonschema.validate(document, compose_schema())


def test_compose_schema_check_can_fail() -> None:
    """The same check refuses a broken file (a typo in a key), so the test above means something."""
    document = yaml.safe_load((INFRA / "compose.yaml").read_text())
    document["services"]["nginx"]["portz"] = ["8080:8080"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, compose_schema())


def test_compose_runs_the_whole_deployment() -> None:
    services = yaml.safe_load((INFRA / "compose.yaml").read_text())["services"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["migrate"]["command"][0] == "migrate_schemas"
    assert services["migrate"]["restart"] == "no"
    for name in ("herald-1", "herald-2"):
        assert services[name]["command"] == ["serve"]
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["command"] == ["worker"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    nginx = (INFRA / "nginx.conf").read_text()
    for server in ("herald-1:8000", "herald-2:8000"):
        assert server in nginx
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert "proxy_set_header Connection $connection_upgrade;" in nginx
    read_timeout = int(re.search(r"location /v1/ws \{[^}]*proxy_read_timeout (\d+)s;", nginx).group(1))  # type: ignore[union-attr]
    assert read_timeout > 90  # longer than HERALD_WS_IDLE_TIMEOUT, so Herald, not nginx, closes idle sockets


@pytest.mark.parametrize(("filename", "document"), k8s_documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_kubernetes_manifest_validates_against_its_schema(filename: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validation_can_fail() -> None:
    deployment = k8s_kind("Deployment", "herald-web")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_web_deployment_probes_and_drain_fit_together() -> None:
    deployment = k8s_kind("Deployment", "herald-web")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    config = k8s_kind("ConfigMap", "herald-config")["data"]
    drain = int(config["HERALD_DRAIN_SECONDS"])
    # Deregistration takes ingress-nginx a few seconds and cloud load balancers 10-15 s.
    assert int(pre_stop[1]) > 15
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + drain
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_autoscaler_pdb_and_job_name_what_exists() -> None:
    hpa = k8s_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "herald-web"
    custom = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    # The metric the HPA scales on is one /metrics exposes.
    assert custom[0]["pods"]["metric"]["name"] == metrics.websocket_connections._name
    adapter = k8s_kind("ConfigMap", "prometheus-adapter-herald")["data"]["config.yaml"]
    assert metrics.websocket_connections._name in adapter
    pdb = k8s_kind("PodDisruptionBudget")
    web_labels = k8s_kind("Deployment", "herald-web")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= web_labels.items()
    service = k8s_kind("Service")
    assert service["spec"]["selector"].items() <= web_labels.items()
    job = k8s_kind("Job")["spec"]["template"]["spec"]["containers"][0]
    assert job["args"] == ["migrate_schemas", "--executor", "multiprocessing"]
    ingress = k8s_kind("Ingress")["metadata"]["annotations"]
    assert int(ingress["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 90
    worker = k8s_kind("Deployment", "herald-worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["worker"]


def test_dockerfile_is_multi_stage_non_root_with_healthcheck_and_serve() -> None:
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"^USER 10001", dockerfile, re.M)
    assert "collectstatic --noinput" in dockerfile
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", dockerfile, re.M)
    assert 'ENTRYPOINT ["herald"]' in dockerfile and 'CMD ["serve"]' in dockerfile
    # Only run dependencies: the install names no extra (no [dev]).
    assert "pip install -c constraints.txt ." in dockerfile


def test_multiprocessing_migrations_run_without_a_pool_everywhere() -> None:
    job = k8s_kind("Job")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "DATABASE_POOL_SIZE", "value": "0"} in job["env"]
    migrate = yaml.safe_load((INFRA / "compose.yaml").read_text())["services"]["migrate"]
    assert migrate["environment"]["DATABASE_POOL_SIZE"] == "0"
    assert migrate["environment"]["HERALD_ENV"] == "production"  # the anchor's settings are kept
