"""Inference replicas behind one gateway (services/gateway/replicas.py).

Unit tests of the rendezvous choice and the keys; then three real inference processes on
loopback (uvicorn, as in production) behind a real gateway, serving models of an external
provider (the fake OpenAI provider) so that no weights load: a model's requests stay on its
replica, a popular model's spread over two, a conversation stays on one, and a replica that is
killed or drains is left for the next within the health-check interval, with no error a client
sees beyond the stream that was on it, which ends with an `error` event; its answer ends
`failed` with the partial text, and re-attaching reads it from another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from redis.asyncio import Redis

from llmnet.launcher import service_callers_setting
from services.gateway.app import create_app as create_gateway
from services.gateway.config import GatewaySettings
from services.gateway.replicas import (
    ReplicaSet,
    RequestKey,
    rendezvous,
    replica_id,
    request_key,
    resolve_ipv4,
)
from services.inference.config import InferenceSettings
from services.inference.messages.tasks import sweep_orphans
from shared.auth.service_credentials import ServiceName
from shared.testing import serve_app
from tests.conftest import INTERNAL_TOKEN, REDIS_URL, SERVICE_TOKENS, Platform
from tests.factories import UserSession
from tests.fakes.openai_provider import create_fake_provider
from tests.models_hub.conftest import developer
from tests.shared.test_events import free_port

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
HEALTH = 0.5  # the gateway's health-check interval in these tests
DRAIN = 2.0
HEARTBEAT = 2  # the answers' lease: the sweeper may fail an orphan this soon after its death
# Enough models that each replica is the first choice of some (the ports, so the hashes, vary).
MODELS = ["steady", "popular", "slow", *(f"m{i}" for i in range(24))]


# ---- the rendezvous choice ---------------------------------------------------------------------


def _firsts(keys: list[str], replicas: list[str], spread: int = 1) -> dict[str, list[str]]:
    return {key: rendezvous(key, replicas)[:spread] for key in keys}


def test_rendezvous_moves_only_the_keys_of_a_replica_that_leaves() -> None:
    replicas = [f"http://10.0.0.{i}:8003" for i in range(1, 6)]
    keys = [f"model:owner/m{i}" for i in range(3000)]
    before = _firsts(keys, replicas)
    counts = {r: sum(1 for k in keys if before[k] == [r]) for r in replicas}
    assert all(400 < n < 800 for n in counts.values()), counts  # about 600 each

    gone = replicas[2]
    after = _firsts(keys, [r for r in replicas if r != gone])
    moved = {k for k in keys if after[k] != before[k]}
    assert moved == {k for k in keys if before[k] == [gone]}


def test_rendezvous_gives_a_new_replica_only_keys_it_takes() -> None:
    replicas = [f"http://10.0.0.{i}:8003" for i in range(1, 5)]
    keys = [f"conversation:{i}" for i in range(3000)]
    before = _firsts(keys, replicas, spread=2)
    new = "http://10.0.0.9:8003"
    after = _firsts(keys, [*replicas, new], spread=2)
    for key in keys:
        if new not in after[key]:
            assert after[key] == before[key]
        else:  # the new replica took one place; the other stayed one of the key's two
            assert set(after[key]) - {new} <= set(before[key])
    taken = sum(1 for k in keys if new in after[k])
    assert 900 < taken < 1500  # 2 of 5 places: about 1200


def test_the_order_is_the_same_whatever_the_order_of_the_list() -> None:
    replicas = [f"http://10.0.0.{i}:8003" for i in range(1, 6)]
    assert rendezvous("model:a/b", replicas) == rendezvous("model:a/b", replicas[::-1])


def _settings(**values: Any) -> GatewaySettings:
    return GatewaySettings(
        database_url="postgresql://x/y",
        redis_url="redis://x",
        internal_token="i" * 32,
        service_token="s" * 32,
        **values,
    )


def test_request_keys() -> None:
    settings = _settings(inference_model_replicas="Ann/Popular=3, bob/x=2")
    chat = json.dumps({"model": "ann/popular", "messages": []}).encode()
    assert request_key("POST", "/v1/chat/completions", chat, settings) == RequestKey(
        "model:ann/popular", 3
    )
    plain = json.dumps({"model": "ann/other", "prompt": "hi"}).encode()
    assert request_key("POST", "/v1/completions", plain, settings) == RequestKey(
        "model:ann/other", 1
    )
    conversation = "/api/v1/conversations/3F2A/messages/9/stream"
    assert request_key("GET", conversation, None, settings) == RequestKey("conversation:3f2a", 1)
    assert request_key("POST", "/v1/chat/completions", b"{not json", settings) is None
    assert request_key("POST", "/v1/chat/completions", b'{"model": 3}', settings) is None
    assert request_key("GET", "/v1/models", None, settings) is None
    assert request_key("POST", "/api/v1/conversations", b'{"model": "a/b"}', settings) is None


def test_model_replicas_setting_is_checked() -> None:
    assert _settings(inference_urls="http://a:1, http://b:2").inference_urls == [
        "http://a:1",
        "http://b:2",
    ]
    with pytest.raises(ValueError, match="owner/slug=N"):
        _settings(inference_model_replicas="ann/popular")
    with pytest.raises(ValueError, match="at least 1"):
        _settings(inference_model_replicas="ann/popular=0")


async def test_a_headless_service_is_resolved_again() -> None:
    assert await resolve_ipv4("localhost", 8003) == ["127.0.0.1"]
    answers: list[list[str] | OSError] = [
        ["10.0.0.1", "10.0.0.2"],
        ["10.0.0.2", "10.0.0.3"],
        OSError("no DNS"),
    ]

    async def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("inference-replicas", 8003)
        answer = answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer

    settings = _settings(inference_headless_url="http://inference-replicas:8003")
    async with aiohttp.ClientSession() as session:  # unused: nothing is checked here
        replicas = ReplicaSet(settings, session, resolve=resolve)
        assert replicas.replicas == []
        await replicas.refresh()
        assert [r.origin for r in replicas.replicas] == [
            "http://10.0.0.1:8003",
            "http://10.0.0.2:8003",
        ]
        await replicas.refresh()
        assert [r.origin for r in replicas.replicas] == [
            "http://10.0.0.2:8003",
            "http://10.0.0.3:8003",
        ]
        await replicas.refresh()  # a failed lookup keeps what was known
        assert len(replicas.replicas) == 2


# ---- real replicas -----------------------------------------------------------------------------


@dataclasses.dataclass
class Replicas:
    """Inference processes on fixed ports (a restarted one keeps its address)."""

    env: dict[str, str]
    ports: list[int]
    extra_args: dict[int, list[str]]
    processes: dict[int, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self, index: int) -> None:
        argv = [
            sys.executable, "-m", "uvicorn", "services.inference.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.ports[index]), "--no-access-log",
            "--log-level", "warning", *self.extra_args.get(index, []),
        ]  # fmt: skip
        self.processes[index] = subprocess.Popen(argv, cwd=ROOT, env=self.env)

    async def wait_ready(self, index: int) -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                assert self.processes[index].poll() is None, f"replica {index} exited"
                with contextlib.suppress(httpx.TransportError):
                    status = (await client.get(f"{self.urls[index]}/healthz")).status_code
                    # The overloaded one answers everything 503: listening is all it does.
                    if status == 200 or index in self.extra_args:
                        return
                assert time.monotonic() < deadline, f"replica {index} did not start"
                await asyncio.sleep(0.2)

    async def ensure_running(self) -> None:
        stopped = [i for i in range(len(self.ports)) if self.processes[i].poll() is not None]
        for index in stopped:
            self.processes[index].wait()
            self.start(index)
        for index in stopped:
            await self.wait_ready(index)

    def index_of(self, replica: str) -> int:
        return [replica_id(url) for url in self.urls].index(replica)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
async def replicas(
    platform: Platform, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Replicas]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "INTERNAL_TOKEN": INTERNAL_TOKEN,
        "SERVICE_TOKEN": SERVICE_TOKENS[ServiceName.INFERENCE],
        "SERVICE_CALLERS": service_callers_setting(SERVICE_TOKENS),
        "LLMNET_DATA_DIR": str(tmp_path_factory.mktemp("replicas")),
        "ACCOUNTS_URL": platform.service_urls["accounts"],
        "MODELS_HUB_URL": platform.service_urls["models_hub"],
        "FEED_URL": platform.service_urls["feed"],
        "OUTBOUND_ALLOW": "127.0.0.1",
        "INFERENCE_TUNE_SECONDS": "0",
        "INFERENCE_MESSAGE_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "INFERENCE_MESSAGE_PERSIST_SECONDS": "0.2",
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN),
        "SHUTDOWN_GRACE_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "false",
    }
    # Three replicas, and a fourth that answers every request 503 (uvicorn's concurrency
    # limit: an overloaded replica) for the gateway that has not noticed yet.
    group = Replicas(env, [free_port() for _ in range(4)], {3: ["--limit-concurrency", "1"]})
    try:
        for index in range(4):
            group.start(index)
        for index in range(4):
            await group.wait_ready(index)
        yield group
    finally:
        group.stop()


@dataclasses.dataclass
class Served:
    url: str
    gateway: Any  # the gateway app: its replica set is app.state.replicas
    client: httpx.AsyncClient
    owner: UserSession
    provider: Any

    def ref(self, model: str) -> str:
        return f"{self.owner.username}/{model}"


@contextlib.asynccontextmanager
async def _gateway(platform: Platform, **settings: Any) -> AsyncIterator[tuple[str, Any]]:
    settings.setdefault("inference_health_seconds", HEALTH)
    app = create_gateway(platform.gateway_settings(**settings))
    async with serve_app(app) as url:
        yield url, app


@pytest.fixture
async def provider() -> AsyncIterator[Any]:
    app = create_fake_provider(api_key="sk-replicas", models=MODELS)
    async with serve_app(app) as url:
        app.state.url = url
        yield app


@pytest.fixture
async def served(
    platform: Platform, replicas: Replicas, provider: Any, client: httpx.AsyncClient
) -> AsyncIterator[Served]:
    await replicas.ensure_running()
    hub = platform.apps["models_hub"]
    original = hub.state.hub
    hub.state.hub = dataclasses.replace(
        original, settings=original.settings.model_copy(update={"outbound_allow": ["127.0.0.1"]})
    )
    try:
        owner = await developer(client, "replicaowner")
        registered = await client.post(
            "/api/v1/providers",
            headers=owner.headers,
            json={
                "name": "Fake",
                "base_url": f"{provider.state.url}/v1",
                "api_key": "sk-replicas",
                "models": [{"remote_model": m, "name": m} for m in MODELS],
            },
        )
        assert registered.status_code == 201, registered.text
        overrides = {f"{owner.username}/popular": 2}
        async with (
            _gateway(
                platform,
                inference_urls=replicas.urls[:3],
                inference_model_replicas=overrides,
            ) as (url, app),
            httpx.AsyncClient(base_url=url, timeout=30) as gateway_client,
        ):
            yield Served(url, app, gateway_client, owner, provider)
    finally:
        hub.state.hub = original


async def _complete(served: Served, model: str) -> httpx.Response:
    response = await served.client.post(
        "/v1/chat/completions",
        headers=served.owner.headers,
        json={"model": served.ref(model), "messages": [{"role": "user", "content": "hi there"}]},
    )
    assert response.status_code == 200, response.text
    return response


def _first(key: str, urls: list[str], spread: int = 1) -> set[str]:
    return {replica_id(url) for url in rendezvous(key, urls)[:spread]}


async def test_a_models_requests_stay_on_its_replica(served: Served, replicas: Replicas) -> None:
    urls = replicas.urls[:3]
    for model in ("steady", "m0", "m1", "m2"):
        seen = {(await _complete(served, model)).headers["x-llmnet-replica"] for _ in range(4)}
        assert seen == _first(f"model:{served.ref(model)}", urls), model
    listed = await served.client.get("/v1/models", headers=served.owner.headers)
    assert listed.status_code == 200
    assert listed.headers["x-llmnet-replica"] in {replica_id(url) for url in urls}


async def test_a_popular_model_is_spread_over_its_replicas(
    served: Served, replicas: Replicas
) -> None:
    seen = [(await _complete(served, "popular")).headers["x-llmnet-replica"] for _ in range(6)]
    assert set(seen) == _first(f"model:{served.ref('popular')}", replicas.urls[:3], spread=2)
    assert min(seen.count(r) for r in set(seen)) >= 2  # in turn, not all on one


async def test_a_conversation_stays_on_one_replica(served: Served, replicas: Replicas) -> None:
    created = await served.client.post(
        "/api/v1/conversations", headers=served.owner.headers, json={"model": served.ref("m3")}
    )
    assert created.status_code == 201, created.text
    conversation = created.json()["id"]
    expected = _first(f"conversation:{conversation}", replicas.urls[:3])
    seen = set()
    for turn in ("one two", "three four"):
        sent = await served.client.post(
            f"/api/v1/conversations/{conversation}/messages",
            headers=served.owner.headers,
            json={"content": turn, "stream": False},
        )
        assert sent.status_code in (200, 201), sent.text
        seen.add(sent.headers["x-llmnet-replica"])
        read = await served.client.get(
            f"/api/v1/conversations/{conversation}", headers=served.owner.headers
        )
        seen.add(read.headers["x-llmnet-replica"])
    assert seen == expected


async def test_a_replica_answering_503_is_skipped(
    platform: Platform, served: Served, replicas: Replicas
) -> None:
    overloaded, healthy = replicas.urls[3], replicas.urls[0]
    # A model whose first replica is the overloaded one.
    model = next(
        m
        for m in MODELS
        if rendezvous(f"model:{served.ref(m)}", [overloaded, healthy])[0] == overloaded
    )
    async with (
        # Checks too rare to notice: the request itself meets the 503.
        _gateway(platform, inference_urls=[overloaded, healthy], inference_health_seconds=3600) as (
            url,
            app,
        ),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        replica_set = app.state.replicas
        async with asyncio.timeout(10):  # the first check, at start, finds it out
            while overloaded in {r.origin for r in replica_set.replicas if r.alive}:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        for replica in replica_set.replicas:
            replica.alive = True  # as before any check noticed
        for _ in range(3):
            response = await client.post(
                "/v1/completions",
                headers=served.owner.headers,
                json={"model": served.ref(model), "prompt": "hello"},
            )
            assert response.status_code == 200, response.text
            assert response.headers["x-llmnet-replica"] == replica_id(healthy)


async def _events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            event[name] = value


async def _openai_stream(
    served: Served, model: str, events: list[dict[str, str]], started: asyncio.Event
) -> None:
    async with served.client.stream(
        "POST",
        "/v1/chat/completions",
        headers=served.owner.headers,
        json={
            "model": served.ref(model),
            "messages": [{"role": "user", "content": " ".join("abcdefghijklmnopqrstuvwxyz")}],
            "stream": True,
        },
    ) as response:
        assert response.status_code == 200
        events.append({"replica": response.headers["x-llmnet-replica"]})
        async for event in _events(response):
            events.append(event)
            started.set()


async def _steady_load(served: Served, model: str, seconds: float) -> list[str]:
    """Requests one after another for `seconds`: the replicas that answered, all 200."""
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.append((await _complete(served, model)).headers["x-llmnet-replica"])
    return seen


async def test_a_draining_replica_is_left_within_the_health_interval(
    served: Served, replicas: Replicas
) -> None:
    chosen = (await _complete(served, "m4")).headers["x-llmnet-replica"]
    index = replicas.index_of(chosen)
    replicas.processes[index].send_signal(signal.SIGTERM)
    # Through the drain (still serving, /readyz red) and past it (no longer listening).
    seen = await _steady_load(served, "m4", DRAIN + 1.0)
    moved_at = next(i for i, r in enumerate(seen) if r != chosen)
    assert all(r != chosen for r in seen[moved_at:])
    left = [r for r in seen if r != chosen]
    assert len(set(left)) == 1
    urls = [u for u in replicas.urls[:3] if u != replicas.urls[index]]
    assert set(left) == _first(f"model:{served.ref('m4')}", urls)  # the next in its order
    ready = await served.client.get("/readyz")  # the others still serve
    assert ready.status_code == 200, ready.text
    await asyncio.to_thread(replicas.processes[index].wait, 10)


async def test_killing_a_replica_fails_over_and_its_streams_end_failed(
    platform: Platform, served: Served, replicas: Replicas
) -> None:
    served.provider.state.chunk_delay_seconds = 0.3
    created = await served.client.post(
        "/api/v1/conversations", headers=served.owner.headers, json={"model": served.ref("slow")}
    )
    assert created.status_code == 201, created.text
    conversation = created.json()["id"]
    words = " ".join(f"w{i}" for i in range(40))
    received: list[str] = []
    openai_events: list[dict[str, str]] = []
    async with served.client.stream(
        "POST",
        f"/api/v1/conversations/{conversation}/messages",
        headers=served.owner.headers,
        json={"content": words, "stream": True},
    ) as response:
        assert response.status_code == 200
        victim = response.headers["x-llmnet-replica"]
        index = replicas.index_of(victim)
        # A model of that replica alone (not `popular`, which has two), streaming on the
        # OpenAI API meanwhile.
        model = next(
            m
            for m in MODELS
            if m != "popular"
            and rendezvous(f"model:{served.ref(m)}", replicas.urls[:3])[0] == replicas.urls[index]
        )
        started = asyncio.Event()
        completion = asyncio.create_task(_openai_stream(served, model, openai_events, started))
        events = []
        async for event in _events(response):
            events.append(event)
            if event.get("event") == "start":
                message = json.loads(event["data"])["message"]["id"]
            if event.get("event") == "delta":
                received.append(json.loads(event["data"])["text"])
                if len(received) == 3:
                    await asyncio.wait_for(started.wait(), 10)
                    replicas.processes[index].kill()
        await asyncio.wait_for(completion, 10)
    # The streams on the dead replica end with an error event, not silently.
    assert events[-1]["event"] == "error"
    assert json.loads(events[-1]["data"])["code"] == "upstream_unavailable"
    assert openai_events[0]["replica"] == victim
    assert openai_events[-1]["data"] == "[DONE]"
    error = json.loads(openai_events[-2]["data"])["error"]
    assert (error["code"], error["type"]) == ("upstream_unavailable", "server_error")

    # New requests: every one answered, none by the dead replica once the check has seen it.
    seen = await _steady_load(served, model, 2 * HEALTH)
    assert victim not in seen
    assert not next(r for r in served.gateway.state.replicas.replicas if r.id == victim).alive

    # Its lease runs out; the sweeper (the inference worker's cron) fails it with its text.
    settings = InferenceSettings(
        **{**platform.common, "service_token": SERVICE_TOKENS[ServiceName.INFERENCE]},
        message_heartbeat_seconds=HEARTBEAT,
    )
    redis = Redis.from_url(REDIS_URL)
    try:
        deadline = time.monotonic() + 3 * HEARTBEAT + 5
        while not await sweep_orphans(redis, platform.sessionmaker, settings):
            assert time.monotonic() < deadline, "the answer was never swept"
            await asyncio.sleep(0.5)
    finally:
        await redis.aclose()

    # Re-attaching reads the answer from another replica: its events, then `failed`.
    async with served.client.stream(
        "GET",
        f"/api/v1/conversations/{conversation}/messages/{message}/stream",
        headers=served.owner.headers,
    ) as watched:
        assert watched.status_code == 200
        assert watched.headers["x-llmnet-replica"] != victim
        again = [event async for event in _events(watched)]
    assert again[0]["event"] == "start"
    assert again[-1]["event"] == "done"
    final = json.loads(again[-1]["data"])
    assert final["status"] == "failed"
    text = "".join(json.loads(e["data"])["text"] for e in again if e["event"] == "delta")
    assert text
    assert final["content"] == text
    assert text.startswith("".join(received))
    served.provider.state.chunk_delay_seconds = 0
