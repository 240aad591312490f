"""The platform through outages of its own Redis and PostgreSQL.

Every service and the gateway run against a Redis and a PostgreSQL this module starts itself
(the embedded servers `make run` uses, on free ports), so stopping them disturbs nobody else.
While a server is down every request answers 503 with Retry-After (never a 500, never a hang:
the client's timeout bounds each one) and every /readyz answers 503; once it is back the
platform serves again by itself.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from llmnet.launcher.embedded import EmbeddedPostgres, EmbeddedRedis, start_postgres, start_redis
from llmnet.migrations import upgrade_head
from shared.db import create_engine, create_sessionmaker
from tests.conftest import Platform, serve_platform
from tests.factories import PASSWORD, UserSession, user_session

pytestmark = pytest.mark.timeout(240)

OUTAGE_SECONDS = 20.0
# A request that takes longer than this is a hang (the services' own timeouts are shorter).
REQUEST_TIMEOUT = httpx.Timeout(10.0)
# Once a server is back, the platform must serve again within this long.
RECOVERY_SECONDS = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Servers:
    data_dir: Path
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis

    async def stop_redis(self) -> None:
        await asyncio.to_thread(self.redis.stop)

    async def start_redis(self) -> None:
        self.redis = await asyncio.to_thread(start_redis, self.data_dir, port=self.redis.port)

    async def stop_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.stop)

    async def start_postgres(self) -> None:
        self.postgres = await asyncio.to_thread(
            start_postgres, self.data_dir, port=self.postgres.port
        )


@dataclass
class Outages:
    servers: Servers
    platform: Platform
    client: httpx.AsyncClient
    user: UserSession


@pytest.fixture(scope="module")
async def outages(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outages]:
    data_dir = tmp_path_factory.mktemp("outages")
    postgres = await asyncio.to_thread(start_postgres, data_dir, port=free_port())
    redis_server = await asyncio.to_thread(start_redis, data_dir, port=free_port())
    servers = Servers(data_dir, postgres, redis_server)
    engine = create_engine(postgres.database_url, pool_size=1)
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await asyncio.to_thread(upgrade_head, postgres.database_url)
        async with (
            serve_platform(
                postgres.database_url,
                redis_server.url,
                data_dir,
                create_sessionmaker(engine),
                redis,
            ) as platform,
            httpx.AsyncClient(base_url=platform.gateway_url, timeout=REQUEST_TIMEOUT) as client,
        ):
            user = await user_session(client)
            yield Outages(servers, platform, client, user)
    finally:
        await redis.aclose()
        await engine.dispose()
        await asyncio.to_thread(servers.redis.stop)
        await asyncio.to_thread(servers.postgres.stop)


Probe = Callable[[Outages], Awaitable[httpx.Response]]


async def _login(o: Outages) -> httpx.Response:
    return await o.client.post(
        "/api/v1/auth/login", json={"username": o.user.username, "password": PASSWORD}
    )


async def _me(o: Outages) -> httpx.Response:
    return await o.client.get("/api/v1/users/me", headers=o.user.headers)


async def _models(o: Outages) -> httpx.Response:
    return await o.client.get("/api/v1/models")


async def _openai_models(o: Outages) -> httpx.Response:
    return await o.client.get("/v1/models", headers=o.user.headers)


PROBES: dict[str, Probe] = {
    "login": _login,
    "users/me": _me,
    "model list": _models,
    "/v1/models": _openai_models,
}


async def _readiness(o: Outages) -> dict[str, httpx.Response]:
    urls = {"gateway": o.platform.gateway_url, **o.platform.service_urls}
    return {name: await o.client.get(f"{url}/readyz") for name, url in urls.items()}


async def _assert_unavailable(o: Outages) -> None:
    for name, probe in PROBES.items():
        response = await probe(o)
        assert response.status_code == 503, (name, response.status_code, response.text)
        assert int(response.headers["retry-after"]) >= 1, name
        body = response.json()
        assert (body["error"] if name.startswith("/v1/") else body)["code"], name
    for name, response in (await _readiness(o)).items():
        assert response.status_code == 503, (name, response.text)
        assert response.json()["status"] == "unavailable", name


async def _serving(o: Outages) -> bool:
    statuses = [(await probe(o)).status_code for probe in PROBES.values()]
    ready = [response.status_code for response in (await _readiness(o)).values()]
    assert 500 not in statuses + ready
    return all(status == 200 for status in statuses + ready)


async def _wait_until_serving(o: Outages) -> None:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while not await _serving(o):
        assert time.monotonic() < deadline, "the platform did not recover by itself"
        await asyncio.sleep(0.5)


async def _through_outage(o: Outages, stop: Callable[[], Awaitable[None]]) -> None:
    await _wait_until_serving(o)
    await stop()
    ends = time.monotonic() + OUTAGE_SECONDS
    while True:
        await _assert_unavailable(o)
        if time.monotonic() >= ends:
            break
        await asyncio.sleep(1)


async def test_a_redis_outage_answers_503_until_redis_is_back(outages: Outages) -> None:
    o = outages
    await _through_outage(o, o.servers.stop_redis)
    # Registered straight at accounts while Redis is away: its event waits in the outbox.
    async with httpx.AsyncClient(
        base_url=o.platform.service_urls["accounts"], timeout=REQUEST_TIMEOUT
    ) as accounts:
        registered = await accounts.post(
            "/api/v1/auth/register",
            json={"username": "offline", "email": "offline@example.com", "password": PASSWORD},
        )
    assert registered.status_code == 201, registered.text

    await o.servers.start_redis()
    await _wait_until_serving(o)
    # The relay resumed on its own and published what accumulated meanwhile.
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        entries = await o.platform.redis.xrange("llmnet:events:user")
        if any(registered.json()["id"] in fields["payload"] for _, fields in entries):
            break
        assert time.monotonic() < deadline, "the outbox was not relayed after the outage"
        await asyncio.sleep(0.5)


async def test_a_postgres_outage_answers_503_until_postgres_is_back(outages: Outages) -> None:
    o = outages
    await _through_outage(o, o.servers.stop_postgres)
    await o.servers.start_postgres()
    await _wait_until_serving(o)
