"""Prometheus and Grafana of the compose stack.

* Prometheus (deploy/prometheus/prometheus.yml) scrapes every service's /metrics where compose
  runs it, the gateway with an admin credential, and Redis' exporter.
* Grafana is provisioned from the repository: the datasource the dashboards name, the
  dashboards' folder as compose mounts it.
* Every metric a dashboard queries exists: `llmnet_*` names are defined in the code (found by
  reading the prometheus_client definitions in llmnet/, shared/ and services/), the others
  are the Redis exporter's, which Prometheus scrapes; the labels a query uses are the
  metric's. The dashboards cover what operators watch (request rates and latencies per route,
  TTFT, ITL, queue depth, batch size, tokens/s, loaded models, the feed's fan-out lag).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.feed.posts.service import FEED_QUEUE
from services.feed.timelines.consumer import GROUP as TIMELINES_GROUP
from shared.events import STREAM_PREFIX
from tests.deploy.stack import COMPOSE_FILE, DEPLOY_DIR, PUBLIC_SERVICE, ROOT, SERVICES

PROMETHEUS_CONFIG = DEPLOY_DIR / "prometheus" / "prometheus.yml"
GRAFANA_DIR = DEPLOY_DIR / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
CODE_DIRS = ("llmnet", "shared", "services")
EXPORTER_SERVICE, EXPORTER_PORT = "redis-exporter", 9121

# The redis_exporter metrics the dashboards may use (oliver006/redis_exporter, with
# --check-streams and --check-single-keys), with their labels.
REDIS_EXPORTER_METRICS = {
    "redis_stream_length": {"db", "stream"},
    "redis_stream_group_lag": {"db", "stream", "group"},
    "redis_stream_group_messages_pending": {"db", "stream", "group"},
    "redis_stream_group_consumers": {"db", "stream", "group"},
    "redis_key_size": {"db", "key"},
    "redis_up": set(),
}
TARGET_LABELS = {"job", "instance"}

PROMQL_FUNCTIONS_AND_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile",
    "stddev", "stdvar", "count_values", "group", "rate", "irate", "increase", "delta",
    "idelta", "deriv", "histogram_quantile", "abs", "ceil", "floor", "round", "clamp_min",
    "clamp_max", "label_replace", "label_join", "vector", "scalar", "time", "sort",
    "sort_desc", "absent", "avg_over_time", "max_over_time", "min_over_time",
    "sum_over_time", "count_over_time", "last_over_time", "changes", "resets", "le", "inf",
    "nan",
}  # fmt: skip


@dataclass(frozen=True)
class Metric:
    kind: str
    labels: frozenset[str]


# --------------------------------------------------------------------------- the code's metrics


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _label_names(node: ast.Call) -> frozenset[str]:
    value: ast.expr | None = node.args[2] if len(node.args) > 2 else None
    for keyword in node.keywords:
        if keyword.arg == "labelnames":
            value = keyword.value
    if isinstance(value, ast.List | ast.Tuple):
        return frozenset(
            e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        )
    return frozenset()


def code_metrics() -> dict[str, Metric]:
    """Every series name the code's prometheus_client metrics expose, with its labels."""
    kinds = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
    exposed: dict[str, Metric] = {}
    for directory in CODE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            if "prometheus_client" not in source:
                continue
            for node in ast.walk(ast.parse(source)):
                if not (isinstance(node, ast.Call) and _call_name(node) in kinds and node.args):
                    continue
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    continue
                kind, name, labels = _call_name(node), first.value, _label_names(node)
                if kind == "Counter":
                    base = name.removesuffix("_total")
                    names = {f"{base}_total": labels, f"{base}_created": labels}
                elif kind == "Histogram":
                    names = {name + s: labels for s in ("_count", "_sum", "_created")}
                    names[f"{name}_bucket"] = labels | {"le"}
                elif kind == "Summary":
                    names = {name + s: labels for s in ("", "_count", "_sum", "_created")}
                elif kind == "Info":
                    names = {f"{name}_info": labels}
                else:
                    names = {name: labels}
                for series, series_labels in names.items():
                    exposed[series] = Metric(kind, frozenset(series_labels))
    return exposed


# --------------------------------------------------------------------------- PromQL


def parse_promql(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) of a PromQL expression, for the subset dashboards use."""
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", " ", expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        labels |= {name.strip() for name in grouping.split(",") if name.strip()}
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    text = re.sub(r'"[^"]*"', " ", text)
    text = re.sub(r"(?<![\w:])\d[\w.]*", " ", text)  # numbers (1e9, 0.95) and durations
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][\w:]*", text):
        word = match.group(0)
        follows = text[match.end() :].lstrip()[:1]
        if word.lower() in PROMQL_FUNCTIONS_AND_KEYWORDS or follows == "(":
            continue
        names.add(word)
    return names, labels


def test_the_promql_reader_finds_metrics_and_labels() -> None:
    names, labels = parse_promql(
        'histogram_quantile(0.95, sum by (route, le) (rate(x_bucket{service=~"$s"}[5m])))'
        " / on (instance) y_total offset 5m"
    )
    assert names == {"x_bucket", "y_total"}
    assert labels == {"route", "le", "service", "instance"}


# --------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p.get("type") != "row"]


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    assert DASHBOARDS, f"no dashboards in {GRAFANA_DIR / 'dashboards'}"
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS}


@pytest.fixture(scope="module")
def queries(dashboards: dict[str, dict[str, Any]]) -> list[Query]:
    found: list[Query] = []
    for name, dashboard in dashboards.items():
        for panel in panels(dashboard):
            targets = panel.get("targets", [])
            assert targets, f"{name}: panel {panel.get('title')!r} queries nothing"
            found.extend(Query(name, panel["title"], t["expr"]) for t in targets)
    return found


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


def scrape_jobs(prometheus: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in prometheus["scrape_configs"]}


def targets_of(job: dict[str, Any]) -> set[str]:
    return {t for config in job.get("static_configs", []) for t in config["targets"]}


def compose_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of a compose service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_every_service(
    prometheus: dict[str, Any], compose: dict[str, Any]
) -> None:
    jobs = scrape_jobs(prometheus)
    services = compose["services"]
    scraped: dict[str, dict[str, Any]] = {}
    for job in jobs.values():
        for target in targets_of(job):
            host, _, port_text = target.rpartition(":")
            assert host in services, f"{job['job_name']}: {target} names no compose service"
            scraped[host] = {"job": job, "port": int(port_text)}
    for service, (_, port) in SERVICES.items():
        assert service in scraped, f"Prometheus does not scrape {service}"
        assert scraped[service]["port"] == port, service
        assert scraped[service]["job"].get("metrics_path", "/metrics") == "/metrics"
    assert scraped[EXPORTER_SERVICE]["port"] == EXPORTER_PORT


def test_prometheus_authenticates_to_the_gateway(
    prometheus: dict[str, Any], compose: dict[str, Any]
) -> None:
    (job,) = [
        j
        for j in scrape_jobs(prometheus).values()
        if any(t.startswith(f"{PUBLIC_SERVICE}:") for t in targets_of(j))
    ]
    authorization = job["authorization"]
    assert authorization.get("type", "Bearer") == "Bearer"
    credentials = Path(authorization["credentials_file"])
    mounts = compose_mounts(compose["services"]["prometheus"])
    assert any(credentials.is_relative_to(target) for target in mounts), (
        f"{credentials} is not on a mount of the prometheus service"
    )
    secrets_mount = next(
        source for target, source in mounts.items() if credentials.is_relative_to(target)
    )
    assert secrets_mount.is_relative_to(DEPLOY_DIR / "secrets"), "keys stay under deploy/secrets"


def test_prometheus_config_is_mounted(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = compose_mounts(prometheus)
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    assert mounts[config_arg.split("=", 1)[1]] == PROMETHEUS_CONFIG


def test_redis_exporter_watches_the_feed(compose: dict[str, Any]) -> None:
    env = compose["services"][EXPORTER_SERVICE]["environment"]
    assert env["REDIS_ADDR"].startswith("redis://redis:")
    streams = env["REDIS_EXPORTER_CHECK_STREAMS"]
    assert f"{STREAM_PREFIX}*" in streams, streams
    assert FEED_QUEUE in env["REDIS_EXPORTER_CHECK_SINGLE_KEYS"].split("=")[-1].split(",")


# --------------------------------------------------------------------------- Grafana


def test_grafana_is_provisioned_from_the_repository(
    compose: dict[str, Any], dashboards: dict[str, dict[str, Any]]
) -> None:
    grafana = compose["services"]["grafana"]
    mounts = compose_mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == GRAFANA_DIR / "provisioning"
    (datasource,) = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load(
        (provisioning / "dashboards" / "llmnet.yml").read_text(encoding="utf-8")
    )["providers"]
    assert mounts[provider["options"]["path"]] == GRAFANA_DIR / "dashboards"
    uids = set()
    for name, dashboard in dashboards.items():
        uids.add(dashboard["uid"])
        for panel in panels(dashboard):
            sources = [panel.get("datasource"), *(t.get("datasource") for t in panel["targets"])]
            for source in filter(None, sources):
                assert source["uid"] == datasource["uid"], f"{name}: {panel['title']}"
    assert len(uids) == len(dashboards), "dashboard uids must be unique"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).name in dashboards


def test_grafana_credentials_come_from_the_environment(compose: dict[str, Any]) -> None:
    env = compose["services"]["grafana"]["environment"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_USER(:-[^}]*)?\}", env["GF_SECURITY_ADMIN_USER"])
    assert re.fullmatch(
        r"\$\{GRAFANA_ADMIN_PASSWORD(:-[^}]*)?\}", env["GF_SECURITY_ADMIN_PASSWORD"]
    )
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


# --------------------------------------------------------------------------- dashboards


def test_code_metrics_are_found() -> None:
    metrics = code_metrics()
    assert "llmnet_http_requests_total" in metrics
    assert metrics["llmnet_http_request_duration_seconds_bucket"].labels >= {"route", "le"}


def test_dashboards_query_metrics_that_exist(
    queries: list[Query], prometheus: dict[str, Any]
) -> None:
    metrics = code_metrics()
    exporter_scraped = any(
        f"{EXPORTER_SERVICE}:{EXPORTER_PORT}" in targets_of(j)
        for j in scrape_jobs(prometheus).values()
    )
    for query in queries:
        where = f"{query.dashboard} / {query.panel}: {query.expr}"
        names, labels = parse_promql(query.expr)
        assert names, f"{where}: no metric"
        available = set(TARGET_LABELS)
        for name in names:
            if name.startswith("llmnet_"):
                assert name in metrics, f"{where}: {name} is not defined in the code"
                metric_labels = set(metrics[name].labels)
            else:
                assert name in REDIS_EXPORTER_METRICS, f"{where}: unknown metric {name}"
                assert exporter_scraped, f"{where}: Prometheus does not scrape the exporter"
                metric_labels = REDIS_EXPORTER_METRICS[name]
            available |= metric_labels
        unknown = labels - available - {"le"}
        assert not unknown, f"{where}: labels {sorted(unknown)} are not on {sorted(names)}"


REQUIRED_COVERAGE = {
    "request rate per route": "llmnet_http_requests_total",
    "latency per route": "llmnet_http_request_duration_seconds_bucket",
    "time to first token": "llmnet_inference_time_to_first_token_seconds_bucket",
    "inter-token latency": "llmnet_inference_inter_token_latency_seconds_bucket",
    "queue depth": "llmnet_inference_queue_depth",
    "batch size": "llmnet_inference_batch_size",
    "tokens per second": "llmnet_inference_tokens_generated_total",
    "loaded models": "llmnet_inference_loaded_models",
    "feed fan-out lag": "redis_stream_group_lag",
}


def test_dashboards_cover_what_operators_watch(queries: list[Query]) -> None:
    queried = {name for q in queries for name in parse_promql(q.expr)[0]}
    missing = {what: name for what, name in REQUIRED_COVERAGE.items() if name not in queried}
    assert not missing, f"no panel for {missing}"
    per_route = [q for q in queries if "llmnet_http_" in q.expr]
    assert any("route" in parse_promql(q.expr)[1] for q in per_route), "nothing per route"


def test_fan_out_lag_watches_the_feed_consumer(queries: list[Query]) -> None:
    """The stream and group in the fan-out panels are the ones the feed worker uses."""
    lag = [q for q in queries if "redis_stream_group" in q.expr]
    assert lag
    for query in lag:
        assert f'stream="{STREAM_PREFIX}post"' in query.expr, query.expr
        assert f'group="{TIMELINES_GROUP}"' in query.expr, query.expr
    queue = [q for q in queries if "redis_key_size" in q.expr]
    assert queue, "no panel for the fan-out jobs waiting"
    assert all(f'key="{FEED_QUEUE}"' in q.expr for q in queue)
