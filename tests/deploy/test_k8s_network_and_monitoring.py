"""NetworkPolicies and ServiceMonitors of every rendered overlay.

The policies are evaluated as Kubernetes does (a pod selected by any Ingress policy admits only
what one of them allows) for concrete pods: every llmnet pod, the ingress controller,
Prometheus, and strangers. Who must reach whom comes from the code: the gateway routes to
every service, and a service (its API and its workers) calls the services whose URL setting
its code reads (its clients of their internal endpoints and APIs are built from them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.stack import (
    NAMESPACE,
    PUBLIC_SERVICE,
    ROOT,
    SERVICES,
    WORKER_OF,
    k8s_name,
    of_kind,
    pod_spec,
    service_port,
    workloads,
)

SERVICES_DIR = ROOT / "services"
URL_SETTING = re.compile(r"settings\.(accounts|models_hub|inference|feed)_url\b")


@dataclass(frozen=True)
class Pod:
    name: str
    labels: dict[str, str]
    namespace: str
    namespace_labels: dict[str, str]


def namespace_labels(name: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}


INGRESS_CONTROLLER = Pod(
    "ingress-nginx-controller",
    {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
    "ingress-nginx",
    namespace_labels("ingress-nginx"),
)
PROMETHEUS = Pod(
    "prometheus",
    {"app.kubernetes.io/name": "prometheus"},
    "monitoring",
    namespace_labels("monitoring"),
)
STRANGER = Pod("stranger", {"app": "debug"}, "default", namespace_labels("default"))
NEIGHBOUR = Pod("neighbour", {"app": "debug"}, NAMESPACE, namespace_labels(NAMESPACE))
DATABASES = {
    "postgresql": (
        Pod(
            "postgresql-0",
            {"app.kubernetes.io/name": "postgresql"},
            NAMESPACE,
            namespace_labels(NAMESPACE),
        ),
        5432,
    ),
    "redis": (
        Pod(
            "redis-master-0",
            {"app.kubernetes.io/name": "redis"},
            NAMESPACE,
            namespace_labels(NAMESPACE),
        ),
        6379,
    ),
}


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector: {} selects everything."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values", []),
        )
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_matches(peer: dict[str, Any], policy_namespace: str, source: Pod) -> bool:
    assert "ipBlock" not in peer, "ipBlock peers are not evaluated here"
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], source.namespace_labels):
            return False
    elif source.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], source.labels)


def port_matches(rule: dict[str, Any], port: int, named: dict[str, int]) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    for entry in ports:
        wanted = entry.get("port")
        if entry.get("protocol", "TCP") != "TCP":
            continue
        if wanted is None or wanted == port or named.get(str(wanted)) == port:
            return True
    return False


def admits(
    policies: list[dict[str, Any]], target: Pod, port: int, source: Pod, named: dict[str, int]
) -> bool:
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == target.namespace
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selector_matches(p["spec"]["podSelector"], target.labels)
    ]
    if not selecting:
        return True  # not isolated
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            peer_ok = not peers or any(
                peer_matches(peer, policy["metadata"]["namespace"], source) for peer in peers
            )
            if peer_ok and port_matches(rule, port, named):
                return True
    return False


def llmnet_pods(docs: list[dict[str, Any]]) -> dict[str, Pod]:
    return {
        doc["metadata"]["name"]: Pod(
            doc["metadata"]["name"],
            doc["spec"]["template"]["metadata"]["labels"],
            doc["metadata"]["namespace"],
            namespace_labels(doc["metadata"]["namespace"]),
        )
        for doc in workloads(docs)
    }


def named_ports(doc: dict[str, Any]) -> dict[str, int]:
    return {
        p["name"]: p["containerPort"]
        for c in pod_spec(doc)["containers"]
        for p in c.get("ports", [])
        if "name" in p
    }


def pods_of(service: str, pods: dict[str, Pod]) -> set[str]:
    """A service's API pod and its workers' pods (they share its settings and clients)."""
    workers = {w for w, owner in WORKER_OF.items() if owner == service}
    return ({k8s_name(service)} | workers) & set(pods)


def _service_package(path: Path) -> str:
    return path.relative_to(SERVICES_DIR).parts[0]


def callers_from_code() -> dict[str, set[str]]:
    """service -> the services whose code reads its URL setting (the gateway routes to all;
    a service's workers may call their own service's API)."""
    callers: dict[str, set[str]] = {service: set() for service in SERVICES}
    for path in SERVICES_DIR.rglob("*.py"):
        caller = _service_package(path)
        for target in URL_SETTING.findall(path.read_text(encoding="utf-8")):
            callers[target].add(caller)  # itself too: a worker calls its own service's API
    return callers


def test_the_call_graph_read_from_the_code_is_plausible() -> None:
    callers = callers_from_code()
    # Guards the scan itself: the gateway reaches every service through its settings.
    assert all(PUBLIC_SERVICE in callers[s] for s in SERVICES if s != PUBLIC_SERVICE), callers
    assert callers[PUBLIC_SERVICE] == set(), "nothing calls the gateway from inside"
    assert "inference" in callers["inference"], "the inference worker calls the inference API"
    assert callers["accounts"] - {PUBLIC_SERVICE}, "the services look users up in accounts"


def test_everything_is_denied_unless_admitted(k8s_docs: list[dict[str, Any]]) -> None:
    policies = list(of_kind(k8s_docs, "NetworkPolicy").values())
    defaults = [
        p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
    ]
    assert defaults, "no default-deny ingress policy"
    assert "Ingress" in defaults[0]["spec"]["policyTypes"]


def test_only_the_gateway_is_reachable_from_the_ingress_controller(
    k8s_docs: list[dict[str, Any]],
) -> None:
    policies = list(of_kind(k8s_docs, "NetworkPolicy").values())
    deployments = of_kind(k8s_docs, "Deployment")
    pods = llmnet_pods(k8s_docs)
    for name, pod in pods.items():
        doc = deployments.get(name)
        ports = named_ports(doc) if doc else {}
        for port in set(ports.values()) or {8000}:
            reachable = admits(policies, pod, port, INGRESS_CONTROLLER, ports)
            assert reachable == (name == k8s_name(PUBLIC_SERVICE)), f"ingress -> {name}:{port}"
            assert not admits(policies, pod, port, STRANGER, ports), f"stranger -> {name}"
            assert not admits(policies, pod, port, NEIGHBOUR, ports), f"neighbour -> {name}"


def test_services_are_reachable_exactly_from_their_callers(
    k8s_docs: list[dict[str, Any]],
) -> None:
    policies = list(of_kind(k8s_docs, "NetworkPolicy").values())
    deployments = of_kind(k8s_docs, "Deployment")
    pods = llmnet_pods(k8s_docs)
    callers = callers_from_code()
    for service, (_, port) in SERVICES.items():
        if service == PUBLIC_SERVICE:
            continue
        target_name = k8s_name(service)
        target, ports = pods[target_name], named_ports(deployments[target_name])
        expected = {p for caller in callers[service] for p in pods_of(caller, pods)}
        for name, source in pods.items():
            if name == target_name:
                continue
            allowed = admits(policies, target, port, source, ports)
            assert allowed == (name in expected), (
                f"{name} -> {target_name}:{port} is {'open' if allowed else 'closed'}"
            )
        assert admits(policies, target, port, PROMETHEUS, ports), f"Prometheus -> {service}"
        assert not admits(policies, target, port + 1000, PROMETHEUS, ports), "only its port"


def test_workers_and_jobs_accept_no_connections(k8s_docs: list[dict[str, Any]]) -> None:
    policies = list(of_kind(k8s_docs, "NetworkPolicy").values())
    pods = llmnet_pods(k8s_docs)
    servers = {k8s_name(s) for s in SERVICES}
    for name, pod in pods.items():
        if name in servers:
            continue
        for source in [*pods.values(), INGRESS_CONTROLLER, PROMETHEUS]:
            assert not admits(policies, pod, 8000, source, {}), f"{source.name} -> {name}"


@pytest.mark.parametrize("database", sorted(DATABASES))
def test_database_and_redis_only_from_the_llmnet_pods(
    database: str, k8s_docs: list[dict[str, Any]]
) -> None:
    policies = list(of_kind(k8s_docs, "NetworkPolicy").values())
    target, port = DATABASES[database]
    for name, source in llmnet_pods(k8s_docs).items():
        assert admits(policies, target, port, source, {}), f"{name} -> {database}"
    for source in (INGRESS_CONTROLLER, PROMETHEUS, STRANGER, NEIGHBOUR):
        assert not admits(policies, target, port, source, {}), f"{source.name} -> {database}"


# --------------------------------------------------------------------------- ServiceMonitors


def test_every_service_has_a_service_monitor(k8s_docs: list[dict[str, Any]]) -> None:
    monitors = of_kind(k8s_docs, "ServiceMonitor")
    services = of_kind(k8s_docs, "Service")
    secrets = of_kind(k8s_docs, "Secret")
    monitored: set[str] = set()
    for name, monitor in monitors.items():
        assert monitor["metadata"]["namespace"] == NAMESPACE
        selected = [
            s
            for s in services.values()
            if selector_matches(monitor["spec"]["selector"], s["metadata"].get("labels", {}))
        ]
        assert len(selected) == 1, f"ServiceMonitor {name} selects {len(selected)} Services"
        service = selected[0]
        for endpoint in monitor["spec"]["endpoints"]:
            assert service_port(service, endpoint["port"]) is not None, f"{name}: port"
            assert endpoint.get("path", "/metrics") == "/metrics"
            credentials = endpoint.get("authorization", {}).get("credentials")
            if credentials:
                data = secrets[credentials["name"]].get("stringData", {})
                assert credentials["key"] in data, f"{name}: no key {credentials['key']}"
        monitored.add(service["metadata"]["name"])
    assert monitored == {k8s_name(s) for s in SERVICES}
    # The gateway's /metrics answers administrators only (services/gateway/metrics.py).
    gateway = monitors[k8s_name(PUBLIC_SERVICE)]["spec"]["endpoints"][0]
    assert gateway["authorization"]["type"] == "Bearer"
