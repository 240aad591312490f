"""Offline checks of the deployment files.

* deploy/k8s: every overlay (dev, gpu) rendered by the offline kustomize renderer
  (tests/deploy/kustomize.py), each object validated against the Kubernetes schemas
  (kubernetes_validate, strict; ServiceMonitors against the vendored CRD schema), and the
  cross-references that schema validation cannot see (selectors, ports, ConfigMap/Secret
  names, autoscalers, disruption budgets, network policies, monitors, the overlays' promises).
* deploy/docker-compose.yml: structure, commands, dependencies, healthchecks, ports, secrets
  (schema and settings agreement: test_compose_settings.py; monitoring: test_monitoring.py).
* deploy/Dockerfile and .dockerignore: the image contract.

No network, no Docker, no cluster: plain, fast, synchronous tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.gateway.config import GatewaySettings
from services.inference.config import InferenceSettings
from shared.auth.service_credentials import (
    ServiceName,
    parse_service_callers,
    service_token_hash,
)
from shared.settings import UPLOAD_FRAMING_BYTES, CommonSettings
from tests.deploy.kustomize import render
from tests.deploy.stack import (
    BASE_DIR,
    COMMON_ENV,
    COMPOSE_FILE,
    DEPLOY_DIR,
    DOCKERFILE,
    DOCKERIGNORE,
    GATEWAY_ENV,
    IMAGE,
    JWT_KEY_ENV,
    JWT_SECRET_FILE,
    JWT_SECRET_KEY,
    K8S_DIR,
    KUSTOMIZATION,
    NAMESPACE,
    OVERLAYS,
    PUBLIC_SERVICE,
    ROOT,
    SERVICEMONITOR_SCHEMA,
    SERVICES,
    STORAGE_ENV,
    URL_ENV,
    WORKER_OF,
    WORKERS,
    all_k8s_yaml,
    compose_command,
    compose_env,
    container_env,
    containers,
    depends_on,
    env_name,
    ident,
    k8s_name,
    llmnet_services,
    load_documents,
    manifest_files,
    matches,
    of_kind,
    pod_spec,
    service_port,
    workloads,
)

# --------------------------------------------------------------------------- k8s: schemas


CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICEMONITOR_SCHEMA}


def test_rendered_objects_validate_against_their_schemas(k8s_docs: list[dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    for doc in k8s_docs:
        custom = CUSTOM_RESOURCES.get((str(doc.get("apiVersion")), str(doc.get("kind"))))
        if custom is not None:
            schema = json.loads(custom.read_text(encoding="utf-8"))
            errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
            assert not errors, f"{ident(doc)}: {errors[0].json_path}: {errors[0].message}"
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{ident(doc)} invalid at {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{ident(doc)}: {exc.message}")


def test_validation_rejects_an_invalid_object() -> None:
    """The validation above can fail: a misspelt field is refused (strict), and so is a
    ServiceMonitor endpoint field the CRD does not have."""
    deployment = load_documents(BASE_DIR / "gateway.yaml")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)
    monitor = load_documents(BASE_DIR / "servicemonitor.yaml")[0]
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "15s"
    schema = json.loads(SERVICEMONITOR_SCHEMA.read_text(encoding="utf-8"))
    assert list(jsonschema.Draft7Validator(schema).iter_errors(monitor))


def test_expected_manifest_files_exist() -> None:
    names = {p.name for p in manifest_files()}
    assert names, "deploy/k8s/base has no manifests"
    assert KUSTOMIZATION.is_file()
    for name, directory in OVERLAYS.items():
        assert (directory / "kustomization.yaml").is_file(), f"overlay {name}"
    assert not list(K8S_DIR.glob("*.yaml")), "manifests live in base/ and overlays/"


# --------------------------------------------------------------------------- k8s: contract


def test_namespace_declared_and_used(k8s_docs: list[dict[str, Any]]) -> None:
    assert NAMESPACE in of_kind(k8s_docs, "Namespace")
    for doc in k8s_docs:
        if doc["kind"] == "Namespace":
            continue
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{ident(doc)} not in {NAMESPACE}"


def test_every_service_has_deployment_and_service(k8s_docs: list[dict[str, Any]]) -> None:
    deployments = of_kind(k8s_docs, "Deployment")
    services = of_kind(k8s_docs, "Service")
    for service, (factory, port) in SERVICES.items():
        name = k8s_name(service)
        assert name in deployments, f"no Deployment {name}"
        assert name in services, f"no Service {name}"
        assert service_port(services[name], port) is not None, f"Service {name} lacks port {port}"
        (container,) = pod_spec(deployments[name])["containers"]
        command = [*container.get("command", []), *container.get("args", [])]
        assert command[:3] == ["uvicorn", factory, "--factory"], f"{name}: {command}"
        assert command[command.index("--port") + 1] == str(port), f"{name}: {command}"
        assert command[command.index("--host") + 1] == "0.0.0.0", f"{name}: {command}"
        assert [p["containerPort"] for p in container["ports"]] == [port], name
    public = [
        name
        for name, svc in services.items()
        if svc["spec"].get("type", "ClusterIP") != "ClusterIP"
    ]
    assert public == [], f"only the Ingress is public; these Services are not ClusterIP: {public}"


def test_worker_deployments(k8s_docs: list[dict[str, Any]]) -> None:
    deployments = of_kind(k8s_docs, "Deployment")
    for worker, settings in WORKERS.items():
        assert worker in deployments, f"no Deployment {worker}"
        (container,) = pod_spec(deployments[worker])["containers"]
        command = [*container.get("command", []), *container.get("args", [])]
        assert command == ["arq", settings]
        assert "ports" not in container, f"{worker} serves no HTTP"


def test_migration_job(k8s_docs: list[dict[str, Any]]) -> None:
    jobs = of_kind(k8s_docs, "Job")
    commands = [
        [*c.get("command", []), *c.get("args", [])]
        for job in jobs.values()
        for c in pod_spec(job)["containers"]
    ]
    assert ["llmnet", "migrate"] in commands, commands
    for job in jobs.values():
        assert pod_spec(job)["restartPolicy"] in {"Never", "OnFailure"}


def test_containers_use_the_image(k8s_docs: list[dict[str, Any]]) -> None:
    for doc in workloads(k8s_docs):
        for container in containers(pod_spec(doc)):
            assert container["image"] == IMAGE, f"{ident(doc)}: {container['image']}"


def test_probes_resources_and_security(k8s_docs: list[dict[str, Any]]) -> None:
    service_names = {k8s_name(s) for s in SERVICES}
    for doc in workloads(k8s_docs):
        spec = pod_spec(doc)
        pod_security = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, ident(doc)
        for container in containers(spec):
            where = f"{ident(doc)}/{container['name']}"
            own = container.get("securityContext", {})
            security = {**pod_security, **own}
            assert security.get("runAsNonRoot") is True, where
            assert security.get("runAsUser", 1) != 0, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert own.get("readOnlyRootFilesystem") is True, where
            assert own.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not own.get("capabilities", {}).get("add"), where
            assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(section, {})), f"{where} {section}"
            if doc["metadata"]["name"] not in service_names or container not in spec["containers"]:
                continue
            port_names = {p.get("name") for p in container["ports"]} | {
                p["containerPort"] for p in container["ports"]
            }
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                http = container.get(probe, {}).get("httpGet")
                assert http is not None, f"{where} has no HTTP {probe}"
                assert http["path"] == path, f"{where} {probe}"
                assert http["port"] in port_names, f"{where} {probe} port {http['port']}"


def test_read_only_root_keeps_data_and_tmp_writable(k8s_docs: list[dict[str, Any]]) -> None:
    for doc in workloads(k8s_docs):
        spec = pod_spec(doc)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            if not container.get("securityContext", {}).get("readOnlyRootFilesystem"):
                continue
            data_dir = container_env(k8s_docs, container).get("LLMNET_DATA_DIR")
            mounts = {m["mountPath"].rstrip("/"): m for m in container.get("volumeMounts", [])}
            for path in ("/tmp", data_dir):  # noqa: S108 - a mount path, not a temp file
                assert path in mounts, f"{ident(doc)}: read-only root and nothing at {path}"
                mount = mounts[path]
                assert not mount.get("readOnly"), f"{ident(doc)}: {path} must be writable"
                source = volumes[mount["name"]]
                assert "emptyDir" in source or "persistentVolumeClaim" in source, (
                    f"{ident(doc)}: {path} is on {sorted(source)}"
                )


GPU = "nvidia.com/gpu"
DEVICE_ENV = env_name(InferenceSettings, "device")
DTYPE_ENV = env_name(InferenceSettings, "dtype")


def test_inference_device_follows_the_overlay(overlay: str, k8s_docs: list[dict[str, Any]]) -> None:
    deployment = of_kind(k8s_docs, "Deployment")[k8s_name("inference")]
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    env = container_env(k8s_docs, container)
    resources = container["resources"]
    if overlay == "gpu":
        assert str(resources["requests"].get(GPU)) == "1", resources
        assert str(resources["limits"].get(GPU)) == "1", resources
        assert env.get(DEVICE_ENV) == "cuda:0"
        assert env.get(DTYPE_ENV) == "bfloat16"
        assert spec.get("nodeSelector"), "GPU pods need a node selector"
        assert any(
            t.get("key") == GPU and t.get("effect") == "NoSchedule"
            for t in spec.get("tolerations", [])
        ), "GPU nodes are tainted: tolerate nvidia.com/gpu"
        strategy = deployment["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxSurge"] == 0, "a rollout must free the GPU first"
    else:
        assert env.get(DEVICE_ENV) == "cpu"
        assert env.get(DTYPE_ENV) in {None, "float32"}
    # No other pod asks for a GPU, and no CPU overlay does at all.
    for doc in workloads(k8s_docs):
        for c in containers(pod_spec(doc)):
            if doc is deployment and overlay == "gpu":
                continue
            for section in ("requests", "limits"):
                assert GPU not in c.get("resources", {}).get(section, {}), ident(doc)


def test_dev_runs_one_replica_of_everything() -> None:
    k8s_docs = render(OVERLAYS["dev"])
    for name, deployment in of_kind(k8s_docs, "Deployment").items():
        assert deployment["spec"].get("replicas") == 1, name
    assert not of_kind(k8s_docs, "HorizontalPodAutoscaler"), "dev does not autoscale"


AUTOSCALED = {k8s_name(PUBLIC_SERVICE), "accounts", "feed", *WORKERS}


@pytest.mark.parametrize("overlay", sorted(set(OVERLAYS) - {"dev"}))
def test_autoscalers(overlay: str) -> None:
    k8s_docs = render(OVERLAYS[overlay])
    deployments = of_kind(k8s_docs, "Deployment")
    hpas = of_kind(k8s_docs, "HorizontalPodAutoscaler")
    targets = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in hpas.values()}
    assert set(targets) == AUTOSCALED, sorted(targets)
    for name, hpa in targets.items():
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment"), name
        assert name in deployments, f"HPA targets no Deployment {name}"
        assert 1 <= hpa["spec"].get("minReplicas", 1) <= hpa["spec"]["maxReplicas"], name
        resources = {
            m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"
        }
        for container in pod_spec(deployments[name])["containers"]:
            for resource in resources:  # utilization is relative to the request
                assert resource in container["resources"]["requests"], f"{name}: {resource}"


def test_disruption_budgets(k8s_docs: list[dict[str, Any]]) -> None:
    deployments = of_kind(k8s_docs, "Deployment")
    budgets = of_kind(k8s_docs, "PodDisruptionBudget")
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in of_kind(k8s_docs, "HorizontalPodAutoscaler").values()
    }
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets.values() if matches(b["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        spec = covering[0]["spec"]
        replicas = (
            hpas[name]["spec"].get("minReplicas", 1)
            if name in hpas
            else deployment["spec"].get("replicas", 1)
        )
        if "minAvailable" in spec:  # a budget that no eviction can meet blocks node drains
            assert int(spec["minAvailable"]) < replicas, f"{name}: {spec}"
        else:
            assert int(spec["maxUnavailable"]) >= 1, f"{name}: {spec}"
    for name, budget in budgets.items():
        selected = [
            d
            for d in deployments.values()
            if matches(
                budget["spec"]["selector"]["matchLabels"],
                d["spec"]["template"]["metadata"]["labels"],
            )
        ]
        assert len(selected) == 1, f"PodDisruptionBudget {name} selects {len(selected)}"


SSE_ANNOTATIONS = "nginx.ingress.kubernetes.io/"


def test_ingress_streams_unbuffered_with_long_timeouts(k8s_docs: list[dict[str, Any]]) -> None:
    (ingress,) = of_kind(k8s_docs, "Ingress").values()
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert annotations[SSE_ANNOTATIONS + "proxy-buffering"] == "off"
    assert annotations[SSE_ANNOTATIONS + "proxy-request-buffering"] == "off"
    assert annotations.get(SSE_ANNOTATIONS + "proxy-http-version", "1.1") == "1.1"
    # nginx must not give up on an upstream sooner than the gateway does.
    upstream = GatewaySettings.model_fields["upstream_timeout_seconds"].default
    for direction in ("read", "send"):
        timeout = int(annotations[f"{SSE_ANNOTATIONS}proxy-{direction}-timeout"])
        assert timeout >= max(upstream, 3600), f"proxy-{direction}-timeout {timeout}"


def test_containers_get_the_environment(k8s_docs: list[dict[str, Any]]) -> None:
    for doc in workloads(k8s_docs):
        name = doc["metadata"]["name"]
        for container in pod_spec(doc)["containers"]:
            env = container_env(k8s_docs, container)
            missing = COMMON_ENV - set(env)
            assert not missing, f"{ident(doc)} lacks {sorted(missing)}"
            if name == k8s_name(PUBLIC_SERVICE):
                assert set(env) >= GATEWAY_ENV, f"{ident(doc)} lacks gateway settings"
            if name in {k8s_name("models_hub"), k8s_name("inference")}:
                assert set(env) >= STORAGE_ENV, f"{ident(doc)} lacks storage settings"


def test_service_urls_point_at_services(k8s_docs: list[dict[str, Any]]) -> None:
    services = of_kind(k8s_docs, "Service")
    for configmap in of_kind(k8s_docs, "ConfigMap").values():
        for var, service in URL_ENV.items():
            if var not in configmap.get("data", {}):
                continue
            url = urlsplit(configmap["data"][var])
            name, port = k8s_name(service), SERVICES[service][1]
            assert (url.scheme, url.hostname, url.port) == ("http", name, port), (var, url)
            assert url.hostname in services, f"{var}: no Service {url.hostname}"
            assert service_port(services[name], port) is not None, f"{var}: port {port}"


def test_secrets_are_placeholders(k8s_docs: list[dict[str, Any]]) -> None:
    secrets = of_kind(k8s_docs, "Secret")
    keys = {key for s in secrets.values() for key in (*s.get("stringData", {}), *s.get("data", {}))}
    assert {"INTERNAL_TOKEN", "DATABASE_URL", JWT_SECRET_KEY} <= keys
    for secret in secrets.values():
        for key, value in secret.get("stringData", {}).items():
            assert "REPLACE_ME" in value, f"Secret {secret['metadata']['name']}/{key}"


def test_jwt_key_is_mounted_from_secret(k8s_docs: list[dict[str, Any]]) -> None:
    deployments = of_kind(k8s_docs, "Deployment")
    users = [k8s_name("accounts")] + [w for w, s in WORKER_OF.items() if s == "accounts"]
    secrets = of_kind(k8s_docs, "Secret")
    for name in users:
        spec = pod_spec(deployments[name])
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        (container,) = spec["containers"]
        key_path = container_env(k8s_docs, container).get(JWT_KEY_ENV)
        assert key_path, f"{name}: {JWT_KEY_ENV} unset"
        for mount in container.get("volumeMounts", []):
            directory = mount["mountPath"].rstrip("/") + "/"
            if key_path.startswith(directory):
                source = volumes[mount["name"]].get("secret")
                assert source, f"{name}: {key_path} is not on a Secret volume"
                relative = key_path[len(directory) :]
                items = source.get("items")
                if items:
                    key = next((i["key"] for i in items if i["path"] == relative), None)
                else:
                    key = relative
                assert key == JWT_SECRET_KEY, f"{name}: {key_path} maps to key {key}"
                secret = secrets[source["secretName"]]
                assert key in {*secret.get("stringData", {}), *secret.get("data", {})}
                break
        else:
            pytest.fail(f"{name}: nothing is mounted at {key_path}")


# --------------------------------------------------------------------------- k8s: references


def test_deployment_selectors_match_pod_labels(k8s_docs: list[dict[str, Any]]) -> None:
    deployments = of_kind(k8s_docs, "Deployment")
    assert deployments
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]
        assert "matchExpressions" not in selector, f"{name}: use matchLabels"
        match_labels = selector.get("matchLabels", {})
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        assert matches(match_labels, labels), f"Deployment {name}: {match_labels} vs {labels}"


def test_deployment_selectors_do_not_overlap(k8s_docs: list[dict[str, Any]]) -> None:
    deployments = of_kind(k8s_docs, "Deployment")
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"].get("matchLabels", {})
        for other, other_deployment in deployments.items():
            labels = other_deployment["spec"]["template"]["metadata"].get("labels", {})
            if other != name:
                assert not matches(selector, labels), f"Deployment {name} also selects {other}"


def test_services_select_one_deployment_and_a_declared_port(
    k8s_docs: list[dict[str, Any]],
) -> None:
    deployments = of_kind(k8s_docs, "Deployment")
    services = of_kind(k8s_docs, "Service")
    assert services
    for name, service in services.items():
        selector = service["spec"].get("selector", {})
        selected = [
            d
            for d in deployments.values()
            if matches(selector, d["spec"]["template"]["metadata"].get("labels", {}))
        ]
        assert len(selected) == 1, f"Service {name} selects {[ident(d) for d in selected]}"
        ports = [p for c in pod_spec(selected[0])["containers"] for p in c.get("ports", [])]
        for entry in service["spec"]["ports"]:
            target = entry.get("targetPort", entry["port"])
            key = "name" if isinstance(target, str) else "containerPort"
            assert any(p.get(key) == target for p in ports), (
                f"Service {name} targets {target!r}, not a containerPort of {ident(selected[0])}"
            )


def test_ingress_backends_exist(k8s_docs: list[dict[str, Any]]) -> None:
    ingresses = of_kind(k8s_docs, "Ingress")
    services = of_kind(k8s_docs, "Service")
    assert ingresses, "no Ingress"
    backends_seen = set()
    for name, ingress in ingresses.items():
        backends = (
            [ingress["spec"]["defaultBackend"]] if "defaultBackend" in ingress["spec"] else []
        )
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                assert path["pathType"] in {"Exact", "Prefix", "ImplementationSpecific"}, path
                backends.append(path["backend"])
        assert backends, f"Ingress {name} routes nowhere"
        for backend in backends:
            target = backend["service"]
            assert target["name"] in services, f"Ingress {name}: no Service {target['name']}"
            port = target["port"].get("name", target["port"].get("number"))
            assert service_port(services[target["name"]], port) is not None, (
                f"Ingress {name}: Service {target['name']} has no port {port!r}"
            )
            backends_seen.add(target["name"])
    assert backends_seen == {k8s_name(PUBLIC_SERVICE)}, backends_seen


def _nginx_size(value: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    value = value.strip().lower()
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


def test_ingress_admits_the_largest_upload_and_no_more(k8s_docs: list[dict[str, Any]]) -> None:
    """The Ingress body limit follows MAX_UPLOAD_BYTES as the gateway does (cap + framing)."""
    data = of_kind(k8s_docs, "ConfigMap")["llmnet-config"]["data"]
    cap = int(data.get("MAX_UPLOAD_BYTES", CommonSettings.model_fields["max_upload_bytes"].default))
    annotations = of_kind(k8s_docs, "Ingress")["llmnet"]["metadata"]["annotations"]
    size = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert _nginx_size(size) == cap + UPLOAD_FRAMING_BYTES, size


# Per-service names of what is now one common setting: a deployment that still sets one
# would be silently ignored.
RETIRED_SETTINGS = (
    "GATEWAY_MAX_UPLOAD_BYTES",
    "MODELS_HUB_MAX_UPLOAD_BYTES",
    "MODELS_HUB_OUTBOUND_ALLOW",
    "INFERENCE_OUTBOUND_ALLOW",
    "MODELS_HUB_PROVIDER_TIMEOUT_SECONDS",
    "INFERENCE_REMOTE_TIMEOUT_SECONDS",
)


@pytest.mark.parametrize(
    "path", [*all_k8s_yaml(), COMPOSE_FILE], ids=lambda p: str(p.relative_to(DEPLOY_DIR))
)
def test_deployment_files_use_the_common_setting_names(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    used = [name for name in RETIRED_SETTINGS if re.search(rf"\b{name}\b", text)]
    assert not used, f"{path.name} sets {used}; the common names have no service prefix"


def test_config_and_secret_references_exist(k8s_docs: list[dict[str, Any]]) -> None:
    configmaps = of_kind(k8s_docs, "ConfigMap")
    secrets = of_kind(k8s_docs, "Secret")

    def keys(doc: dict[str, Any]) -> set[str]:
        return {*doc.get("data", {}), *doc.get("stringData", {}), *doc.get("binaryData", {})}

    for doc in workloads(k8s_docs):
        spec = pod_spec(doc)
        for container in containers(spec):
            where = f"{ident(doc)}/{container['name']}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]["name"]
                    assert ref in configmaps, f"{where}: no ConfigMap {ref}"
                if "secretRef" in source:
                    ref = source["secretRef"]["name"]
                    assert ref in secrets, f"{where}: no Secret {ref}"
            for var in container.get("env", []):
                value_from = var.get("valueFrom", {})
                if "configMapKeyRef" in value_from:
                    ref = value_from["configMapKeyRef"]
                    assert ref["name"] in configmaps, f"{where}: no ConfigMap {ref['name']}"
                    assert ref["key"] in keys(configmaps[ref["name"]]), f"{where}: {ref}"
                if "secretKeyRef" in value_from:
                    ref = value_from["secretKeyRef"]
                    assert ref["name"] in secrets, f"{where}: no Secret {ref['name']}"
                    assert ref["key"] in keys(secrets[ref["name"]]), f"{where}: {ref}"
        for volume in spec.get("volumes", []):
            where = f"{ident(doc)} volume {volume['name']}"
            if "secret" in volume:
                ref = volume["secret"]["secretName"]
                assert ref in secrets, f"{where}: no Secret {ref}"
                for item in volume["secret"].get("items", []):
                    assert item["key"] in keys(secrets[ref]), f"{where}: no key {item['key']}"
            if "configMap" in volume:
                ref = volume["configMap"]["name"]
                assert ref in configmaps, f"{where}: no ConfigMap {ref}"
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in keys(configmaps[ref]), f"{where}: no key {item['key']}"


def test_volume_mounts_name_pod_volumes(k8s_docs: list[dict[str, Any]]) -> None:
    for doc in workloads(k8s_docs):
        spec = pod_spec(doc)
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for container in containers(spec):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{ident(doc)}: no volume {mount['name']}"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization.get("resources", [])
    assert len(resources) == len(set(resources)), f"duplicates in {resources}"
    assert set(resources) == {p.name for p in manifest_files()}
    assert kustomization.get("namespace", NAMESPACE) == NAMESPACE


# --------------------------------------------------------------------------- docker-compose


def test_compose_declares_the_stack(compose: dict[str, Any]) -> None:
    expected = {"postgres", "redis", "minio", "migrate", *SERVICES, *WORKERS}
    missing = expected - set(compose["services"])
    assert not missing, f"missing compose services: {sorted(missing)}"
    image = compose["services"]["postgres"]["image"]
    major = re.match(r"(?:.*/)?postgres:(\d+)", image)
    assert major, image
    assert int(major.group(1)) >= 16, image
    assert re.match(r"(?:.*/)?redis:7", compose["services"]["redis"]["image"])


def test_compose_depends_on_existing_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dep, condition in depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert condition in conditions, f"{name} -> {dep}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"


def test_compose_llmnet_services_share_one_image(compose: dict[str, Any]) -> None:
    services = llmnet_services(compose)
    assert {"migrate", *SERVICES, *WORKERS} <= set(services)
    for name, service in services.items():
        build = service.get("build")
        assert isinstance(build, dict), f"{name} has no build section"
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context {context}"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, f"{name}: dockerfile"


def test_compose_llmnet_containers_run_unprivileged(compose: dict[str, Any]) -> None:
    for name, service in llmnet_services(compose).items():
        user = str(service.get("user", "")).split(":")[0]
        assert user not in {"", "0", "root"}, f"{name} runs as {user or 'the image user'}"
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("privileged"), name


def test_compose_app_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, (factory, port) in SERVICES.items():
        command = compose_command(services[name])
        assert command[:3] == ["uvicorn", factory, "--factory"], f"{name}: {command}"
        assert command[command.index("--port") + 1] == str(port), f"{name}: {command}"
        assert command[command.index("--host") + 1] == "0.0.0.0", f"{name}: {command}"
    for name, settings in WORKERS.items():
        assert compose_command(services[name]) == ["arq", settings]
    assert compose_command(services["migrate"]) == ["llmnet", "migrate"]
    for name, service in llmnet_services(compose).items():
        assert compose_command(service)[:2] != ["llmnet", "run"], (
            f"{name}: `llmnet run` is dev only"
        )


def test_compose_startup_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert depends_on(services["migrate"]).get("postgres") == "service_healthy"
    for name in [*SERVICES, *WORKERS]:
        deps = depends_on(services[name])
        assert deps.get("migrate") == "service_completed_successfully", f"{name} -> migrate"
        assert deps.get("postgres") == "service_healthy", f"{name} -> postgres"
        assert deps.get("redis") == "service_healthy", f"{name} -> redis"


# What the stack publishes on the host: the platform, Grafana, and Prometheus on loopback only.
PUBLISHED = {
    PUBLIC_SERVICE: "8000:8000",
    "grafana": "3000:3000",
    "prometheus": "127.0.0.1:9090:9090",
}


def test_compose_publishes_only_the_gateway_and_monitoring(compose: dict[str, Any]) -> None:
    publishing = {n: s["ports"] for n, s in compose["services"].items() if s.get("ports")}
    assert set(publishing) == set(PUBLISHED), sorted(publishing)
    for name, ports in publishing.items():
        (mapping,) = ports
        assert isinstance(mapping, str), f"{name}: use the short syntax"
        assert mapping == PUBLISHED[name], f"{name}: {mapping}"


def test_compose_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ["postgres", "redis", "minio", *SERVICES, *WORKERS]:
        test = services[name].get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert not services[name]["healthcheck"].get("disable"), name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name, (_, port) in SERVICES.items():
        test = services[name]["healthcheck"]["test"]
        text = " ".join(test)
        assert test[0] in {"CMD", "CMD-SHELL"}, f"{name}: {test}"
        assert test[1].startswith("python"), f"{name}: the image has no curl/wget: {test}"
        assert f":{port}/healthz" in text, f"{name}: healthcheck must hit :{port}/healthz"


def test_compose_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    # `llmnet migrate` reads DATABASE_URL only; it migrates the services' database.
    migrate = compose_env(services["migrate"])
    assert migrate["DATABASE_URL"] == compose_env(services[PUBLIC_SERVICE])["DATABASE_URL"]
    for name in [*SERVICES, *WORKERS]:
        env = compose_env(services[name])
        missing = COMMON_ENV - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
        for var, target in URL_ENV.items():
            url = urlsplit(env[var])
            assert url.hostname in services, f"{name}: {var}={env[var]} names no service"
            assert (url.hostname, url.port) == (target, SERVICES[target][1]), f"{name}: {var}"
    assert set(compose_env(services[PUBLIC_SERVICE])) >= GATEWAY_ENV
    for name in ("models_hub", "inference"):
        env = compose_env(services[name])
        assert set(env) >= STORAGE_ENV, f"{name} lacks storage settings"
        # S3_ENDPOINT is host:port, as the minio client takes it.
        assert env["S3_ENDPOINT"].rpartition(":")[0] in services, env["S3_ENDPOINT"]


def test_compose_jwt_secret(compose: dict[str, Any]) -> None:
    declared = compose.get("secrets", {})
    files = {name: spec.get("file") for name, spec in declared.items()}
    assert JWT_SECRET_FILE in files.values(), files
    (secret_name,) = [n for n, f in files.items() if f == JWT_SECRET_FILE]
    header = COMPOSE_FILE.read_text(encoding="utf-8").split("\nservices:", 1)[0]
    assert re.search(r"^#.*openssl .*jwt-private-key\.pem", header, re.M), "document openssl"
    users = ["accounts", *(w for w, s in WORKER_OF.items() if s == "accounts")]
    for name, service in compose["services"].items():
        for entry in service.get("secrets", []):
            source = entry if isinstance(entry, str) else entry["source"]
            assert source in declared, f"{name} uses undeclared secret {source}"
    for name in users:
        service = compose["services"][name]
        targets = {}
        for entry in service.get("secrets", []):
            if isinstance(entry, str):
                targets[entry] = f"/run/secrets/{entry}"
            else:
                target = entry.get("target", entry["source"])
                targets[entry["source"]] = (
                    target if target.startswith("/") else f"/run/secrets/{target}"
                )
        assert secret_name in targets, f"{name} does not mount {secret_name}"
        assert compose_env(service).get(JWT_KEY_ENV) == targets[secret_name], name


def test_compose_named_volumes_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_compose_and_k8s_run_the_same_workers(
    compose: dict[str, Any], k8s_docs: list[dict[str, Any]]
) -> None:
    in_k8s = {
        tuple([*c.get("command", []), *c.get("args", [])])
        for doc in workloads(k8s_docs)
        for c in pod_spec(doc)["containers"]
        if [*c.get("command", []), *c.get("args", [])][:1] == ["arq"]
    }
    in_compose = {
        tuple(compose_command(s))
        for s in compose["services"].values()
        if compose_command(s)[:1] == ["arq"]
    }
    assert in_k8s == in_compose
    assert in_k8s >= {("arq", settings) for settings in WORKERS.values()}


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_contract() -> None:
    instructions = dockerfile_instructions()
    args: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args.setdefault(key, value.strip("\"'"))

    def expand(value: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)

    bases = [expand(rest.split()[0]) for keyword, rest in instructions if keyword == "FROM"]
    assert bases, "no FROM"
    assert bases[-1] == "python:3.11-slim", bases
    final_stage = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    final = instructions[final_stage:]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}, users
    workdirs = [rest for keyword, rest in final if keyword == "WORKDIR"]
    assert workdirs, "no WORKDIR"
    assert workdirs[-1] == "/app", workdirs
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    installs = re.findall(r"pip install ([^&;|]*)", runs)
    assert installs, "no pip install"
    assert "." in installs[-1].split(), f"the project must be installed last: {installs}"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".git", ".venv", "deploy/secrets"):
        assert required in patterns, f".dockerignore must exclude {required}"
    for needed in ("pyproject.toml", "README.md", "llmnet", "shared", "services"):
        assert needed not in patterns, f".dockerignore must not exclude {needed}"


# --------------------------------------------------------------------------- service credentials


def _service_of(name: str) -> ServiceName:
    return ServiceName(WORKER_OF.get(name, name).replace("-", "_"))


def test_compose_gives_each_service_its_own_credential(compose: dict[str, Any]) -> None:
    services = compose["services"]
    tokens: dict[ServiceName, str] = {}
    for name in [*SERVICES, *WORKERS]:
        env = compose_env(services[name])
        token = env.get("SERVICE_TOKEN", "")
        assert len(token) >= 16, f"{name} has no SERVICE_TOKEN"
        service = _service_of(name)
        assert tokens.setdefault(service, token) == token, f"{name}: not its service's token"
        callers = parse_service_callers(env["SERVICE_CALLERS"])
        assert callers == {s: service_token_hash(t) for s, t in callers_tokens(services).items()}
    assert len(set(tokens.values())) == len(tokens) == len(ServiceName)


def callers_tokens(services: dict[str, Any]) -> dict[ServiceName, str]:
    return {ServiceName(n): compose_env(services[n])["SERVICE_TOKEN"] for n in SERVICES}


def test_k8s_pods_read_only_their_own_credential(k8s_docs: list[dict[str, Any]]) -> None:
    keys: dict[str, str] = {}
    for doc in of_kind(k8s_docs, "Deployment").values():
        name = doc["metadata"]["name"]
        (container,) = pod_spec(doc)["containers"]
        (entry,) = [e for e in container.get("env", []) if e["name"] == "SERVICE_TOKEN"]
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "llmnet-service-tokens"
        assert ref["key"] == _service_of(name).value, name
        keys[name] = ref["key"]
    tokens = of_kind(k8s_docs, "Secret")["llmnet-service-tokens"]["stringData"]
    assert set(tokens) == {s.value for s in ServiceName}
    assert "SERVICE_CALLERS" in container_env(k8s_docs, container)
