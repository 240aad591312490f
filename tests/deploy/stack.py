"""What the deployment tests know about the platform, and helpers to read the deploy files.

The platform contract (services, ports, workers, variables) in one place; the settings classes
are the reference where they say it (see test_compose_settings.py).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = ROOT / "deploy"
K8S_DIR = DEPLOY_DIR / "k8s"
BASE_DIR = K8S_DIR / "base"
KUSTOMIZATION = BASE_DIR / "kustomization.yaml"
OVERLAYS = {"dev": K8S_DIR / "overlays" / "dev", "gpu": K8S_DIR / "overlays" / "gpu"}
SERVICEMONITOR_SCHEMA = Path(__file__).with_name("servicemonitor-schema.json")
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")
COMPOSE_FILE = DEPLOY_DIR / "docker-compose.yml"
DOCKERFILE = DEPLOY_DIR / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

IMAGE = "llmnet:latest"
NAMESPACE = "llmnet"

# Platform contract: service -> (ASGI factory, port). Names are the docker-compose ones.
SERVICES: dict[str, tuple[str, int]] = {
    "gateway": ("services.gateway.app:create_app", 8000),
    "accounts": ("services.accounts.app:create_app", 8001),
    "models_hub": ("services.models_hub.app:create_app", 8002),
    "inference": ("services.inference.app:create_app", 8003),
    "feed": ("services.feed.app:create_app", 8004),
}
PUBLIC_SERVICE = "gateway"
# Worker name (compose service == k8s Deployment) -> arq WorkerSettings.
WORKERS: dict[str, str] = {
    "accounts-worker": "services.accounts.worker.WorkerSettings",
    "models-hub-worker": "services.models_hub.worker.WorkerSettings",
    "finetune-worker": "services.models_hub.finetune_worker.WorkerSettings",
    "feed-worker": "services.feed.worker.WorkerSettings",
    "inference-worker": "services.inference.worker.WorkerSettings",
}
# Which settings module a worker belongs to (it gets that service's extra environment).
WORKER_OF = {
    "accounts-worker": "accounts",
    "models-hub-worker": "models_hub",
    "finetune-worker": "models_hub",
    "feed-worker": "feed",
    "inference-worker": "inference",
}

COMMON_ENV = {
    "DATABASE_URL",
    "REDIS_URL",
    "LLMNET_DATA_DIR",
    "LOG_LEVEL",
    "INTERNAL_TOKEN",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "ACCOUNTS_URL",
    "MODELS_HUB_URL",
    "INFERENCE_URL",
    "FEED_URL",
}
URL_ENV = {
    "ACCOUNTS_URL": "accounts",
    "MODELS_HUB_URL": "models_hub",
    "INFERENCE_URL": "inference",
    "FEED_URL": "feed",
}
GATEWAY_ENV = {
    "GATEWAY_RATE_LIMIT_PER_MINUTE",
    "GATEWAY_ANON_RATE_LIMIT_PER_MINUTE",
    "GATEWAY_MAX_BODY_BYTES",
    "GATEWAY_CORS_ORIGINS",
}
STORAGE_ENV = {"STORAGE_BACKEND", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET"}
JWT_KEY_ENV = "ACCOUNTS_JWT_PRIVATE_KEY_FILE"
JWT_SECRET_KEY = "jwt-private-key.pem"
JWT_SECRET_FILE = "./secrets/jwt-private-key.pem"

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def k8s_name(service: str) -> str:
    """Kubernetes object names are DNS labels: models_hub -> models-hub."""
    return service.replace("_", "-")


# --------------------------------------------------------------------------- loading


def manifest_files() -> list[Path]:
    return sorted(p for p in BASE_DIR.glob("*.yaml") if p != KUSTOMIZATION)


def all_k8s_yaml() -> list[Path]:
    return sorted(K8S_DIR.rglob("*.yaml"))


def load_documents(path: Path) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc.get("kind") == kind:
            name = doc["metadata"]["name"]
            assert name not in found, f"duplicate {kind}/{name}"
            found[name] = doc
    return found


def ident(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def workloads(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if doc.get("kind") in WORKLOAD_KINDS:
            yield doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str | None]:
    """Environment of a container: envFrom ConfigMaps/Secrets, then env (values or None)."""
    configmaps = of_kind(docs, "ConfigMap")
    secrets = of_kind(docs, "Secret")
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]].get("data", {}))
        if "secretRef" in source:
            secret = secrets[source["secretRef"]["name"]]
            env.update({key: None for key in secret.get("data", {})})
            env.update(secret.get("stringData", {}))
    for var in container.get("env", []):
        env[var["name"]] = var.get("value")
    return env


def service_port(service: dict[str, Any], port: int | str) -> dict[str, Any] | None:
    entries: list[dict[str, Any]] = service["spec"].get("ports", [])
    for entry in entries:
        if port in (entry.get("name"), entry.get("port")):
            return entry
    return None


def env_name(settings: type[CommonSettings], field: str) -> str:
    """The variable a settings field is read from (its alias, or prefix + name)."""
    info = settings.model_fields[field]
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"{settings.model_config.get('env_prefix', '')}{field}".upper()


# --------------------------------------------------------------------------- compose


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def llmnet_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == IMAGE}
