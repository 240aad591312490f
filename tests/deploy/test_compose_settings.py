"""The compose file against the Compose Specification's JSON schema, and every deployment's
environment against the settings classes that read it.

The settings classes are the reference: a variable that no settings class reads is ignored
silently at run time (a typo, a retired name), and a required setting that is missing stops
the process at start. Both are errors here, for compose (per container) and for the rendered
Kubernetes overlays.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from services.accounts.config import AccountsSettings
from services.feed.config import FeedSettings
from services.gateway.config import GatewaySettings
from services.inference.config import InferenceSettings
from services.models_hub.config import ModelsHubSettings
from shared.settings import CommonSettings
from tests.deploy.stack import (
    COMPOSE_SCHEMA,
    PUBLIC_SERVICE,
    SERVICES,
    WORKER_OF,
    compose_command,
    compose_env,
    container_env,
    env_name,
    k8s_name,
    llmnet_services,
    of_kind,
    pod_spec,
    workloads,
)

SETTINGS: dict[str, type[CommonSettings]] = {
    "gateway": GatewaySettings,
    "accounts": AccountsSettings,
    "models_hub": ModelsHubSettings,
    "inference": InferenceSettings,
    "feed": FeedSettings,
}
# Read by the libraries the processes run, not by a settings class (each documented where set).
PROCESS_ENV = {"XDG_CACHE_HOME"}
# `llmnet migrate` (llmnet/cli.py) reads DATABASE_URL and, like every process, the common
# settings; it is not a service and holds no service credential.
MIGRATE_REQUIRED = {"DATABASE_URL"}


def variables(settings: type[CommonSettings]) -> set[str]:
    return {env_name(settings, field) for field in settings.model_fields}


def required(settings: type[CommonSettings]) -> set[str]:
    return {
        env_name(settings, field)
        for field, info in settings.model_fields.items()
        if info.is_required()
    }


def settings_of(name: str) -> type[CommonSettings] | None:
    """The settings class of a compose service or k8s workload (None: the migration)."""
    service = WORKER_OF.get(name, name).replace("-", "_")
    return SETTINGS.get(service)


# --------------------------------------------------------------------------- schema


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    # The schema names draft 2019-09 (by a URI jsonschema does not know: "http://...#").
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], compose_validator: jsonschema.protocols.Validator
) -> None:
    errors = sorted(compose_validator.iter_errors(compose), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors[:10])


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("services", "gateway", "restart_policy"), "always"),  # not a service field
        (("services", "gateway", "depends_on", "accounts", "condition"), "service_ready"),
        (("services", "gateway", "ports"), "8000:8000"),  # must be a list
        (("volumes", "llmnet-data"), {"drive": "local"}),
    ],
)
def test_the_schema_refuses_what_compose_refuses(
    compose: dict[str, Any],
    compose_validator: jsonschema.protocols.Validator,
    where: tuple[str, ...],
    value: object,
) -> None:
    broken = copy.deepcopy(compose)
    node = broken
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    assert list(compose_validator.iter_errors(broken)), f"{where} = {value!r} was accepted"


# --------------------------------------------------------------------------- compose


def test_settings_classes_cover_every_service() -> None:
    assert set(SETTINGS) == set(SERVICES)
    for name, settings in SETTINGS.items():
        prefix = str(settings.model_config.get("env_prefix", ""))
        assert prefix == f"{name.upper()}_", f"{settings.__name__}: env prefix {prefix!r}"


def test_compose_environment_is_read_by_the_settings(compose: dict[str, Any]) -> None:
    services = llmnet_services(compose)
    assert set(services) >= {"migrate", *SERVICES, *WORKER_OF}
    for name, service in services.items():
        env = set(compose_env(service))
        settings = settings_of(name)
        known = variables(settings or CommonSettings)
        unread = env - known
        assert not unread, f"{name}: no settings class reads {sorted(unread)}"
        missing = (required(settings) if settings else MIGRATE_REQUIRED) - env
        assert not missing, f"{name}: required settings missing: {sorted(missing)}"


def test_compose_environment_values_are_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's settings class accepts its compose environment (types, formats)."""
    for name, service in llmnet_services(compose).items():
        settings = settings_of(name)
        if settings is None:
            continue
        with monkeypatch.context() as patch:
            for variable in variables(settings):
                patch.delenv(variable, raising=False)
            for variable, value in compose_env(service).items():
                patch.setenv(variable, value)
            settings()


def test_compose_ports_and_urls_agree_with_the_settings(compose: dict[str, Any]) -> None:
    """The services listen where the settings' defaults (the one-machine layout) and the
    compose URLs say they do."""
    services = compose["services"]
    for service, (_, port) in SERVICES.items():
        command = compose_command(services[service])
        assert int(command[command.index("--port") + 1]) == port, service
        if service == PUBLIC_SERVICE:
            default = AccountsSettings.model_fields["public_base_url"].default
            assert default.port == port, "PUBLIC_BASE_URL's default names the gateway's port"
            continue
        field = f"{service}_url"
        assert urlsplit(CommonSettings.model_fields[field].default).port == port, field
        for name, other in llmnet_services(compose).items():
            url = compose_env(other).get(env_name(CommonSettings, field))
            if url is not None:
                assert (urlsplit(url).hostname, urlsplit(url).port) == (service, port), name
    public = compose_env(services["accounts"]).get("PUBLIC_BASE_URL")
    assert public is not None, "accounts mails links: set PUBLIC_BASE_URL"
    assert urlsplit(public).port == SERVICES[PUBLIC_SERVICE][1], public


# --------------------------------------------------------------------------- kubernetes


def test_k8s_environment_is_read_by_the_settings(k8s_docs: list[dict[str, Any]]) -> None:
    every = set().union(*(variables(s) for s in SETTINGS.values())) | PROCESS_ENV
    sources = {
        "configMapRef": of_kind(k8s_docs, "ConfigMap"),
        "secretRef": of_kind(k8s_docs, "Secret"),
    }
    shared: set[str] = set()
    for doc in workloads(k8s_docs):
        for container in pod_spec(doc)["containers"]:
            for source in container.get("envFrom", []):
                for ref, objects in sources.items():
                    if ref in source:
                        data = objects[source[ref]["name"]]
                        shared |= {*data.get("data", {}), *data.get("stringData", {})}
    assert shared, "no environment from ConfigMaps or Secrets"
    # One ConfigMap serves every container, so each key must be read by some settings class.
    unread = shared - every
    assert not unread, f"ConfigMap/Secret keys no settings class reads: {sorted(unread)}"
    for doc in workloads(k8s_docs):
        name = doc["metadata"]["name"]
        settings = settings_of(name)
        for container in pod_spec(doc)["containers"]:
            own = {var["name"] for var in container.get("env", [])}
            known = variables(settings or CommonSettings) | PROCESS_ENV
            assert not own - known, f"{name}: no settings class reads {sorted(own - known)}"
            env = set(container_env(k8s_docs, container))
            missing = (required(settings) if settings else MIGRATE_REQUIRED) - env
            assert not missing, f"{name}: required settings missing: {sorted(missing)}"
    assert {k8s_name(s) for s in SERVICES} <= {d["metadata"]["name"] for d in workloads(k8s_docs)}
