"""The test platform: a fresh PostgreSQL database migrated by alembic, an isolated Redis
database, every service served on loopback, and the gateway wired to them.

Tests talk to the gateway over real HTTP, as a client would. Between tests every table is
truncated and the Redis database flushed, so order never matters. PostgreSQL and Redis are the
machine's where they answer, embedded ones started for the session where they do not.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llmnet.launcher.ci_servers import (
    DEFAULT_TEST_DATABASE_URL,
    DEFAULT_TEST_REDIS_URL,
    ensure_test_servers,
    worker_redis_url,
)
from llmnet.migrations import upgrade_head
from services.accounts.app import create_app as create_accounts
from services.accounts.config import AccountsSettings
from services.feed.app import create_app as create_feed
from services.feed.config import FeedSettings
from services.gateway.app import create_app as create_gateway
from services.gateway.config import GatewaySettings
from services.inference.app import create_app as create_inference
from services.inference.config import InferenceSettings
from services.models_hub.app import create_app as create_models_hub
from services.models_hub.config import ModelsHubSettings
from shared.auth.service_credentials import ServiceName, service_token_hash
from shared.db import Base, create_engine, create_sessionmaker
from shared.secrets_box import SecretBox
from shared.settings import REPO_ROOT
from shared.testing import create_database, drop_database, generate_rsa_key, serve_app

# Browser fixtures (`browser`, `page`, `offline`, `screenshot_dir`) for every test folder.
pytest_plugins = ["tests.browser.fixtures"]

# The machine's PostgreSQL and Redis when they answer at TEST_DATABASE_URL / TEST_REDIS_URL;
# where one does not (a laptop with neither), an embedded one for this session, on a port and
# in a data dir of its own (the LLMNET_TEST_* variables), stopped when the session ends.
# Under pytest-xdist (`make test` runs a worker per CPU) every worker is a session of its own:
# the controller, which loads this file first, starts any embedded servers and the workers
# inherit its environment; each worker then takes its own database (one per session anyway)
# and its own Redis database, so their flushes and keys never meet.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
WORKER_INDEX = int(WORKER.removeprefix("gw")) if WORKER else 0
TEST_SERVERS = ensure_test_servers(
    Path(os.environ.get("LLMNET_TEST_DATA_DIR") or REPO_ROOT / ".data" / "test") / (WORKER or ""),
    os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL),
    os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL),
    postgres_port=int(os.environ.get("LLMNET_TEST_POSTGRES_PORT") or 55434) + WORKER_INDEX,
    redis_port=int(os.environ.get("LLMNET_TEST_REDIS_PORT") or 56381) + WORKER_INDEX,
)
atexit.register(TEST_SERVERS.stop)
ADMIN_DATABASE_URL = TEST_SERVERS.database_url
REDIS_URL = worker_redis_url(TEST_SERVERS.redis_url, WORKER_INDEX)
# Processes the tests start (the launcher, workers) reach the same servers.
os.environ["TEST_DATABASE_URL"] = ADMIN_DATABASE_URL
os.environ["TEST_REDIS_URL"] = REDIS_URL
INTERNAL_TOKEN = "test-internal-token-0123456789"
# Each service's own credential for internal endpoints, as `make run` gives each process.
SERVICE_TOKENS = {name: f"test-{name.value}-service-token-0123456789" for name in ServiceName}
SERVICE_CALLERS = {name: service_token_hash(token) for name, token in SERVICE_TOKENS.items()}
SECRET_BOX_KEY = SecretBox.generate_key()


@dataclass
class Platform:
    """Everything a test needs to reach the running platform."""

    gateway_url: str
    service_urls: dict[str, str]
    common: dict[str, Any]
    jwt_key_file: Path
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    apps: dict[str, Any] = field(default_factory=dict)

    def gateway_settings(self, **overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            **self.common,
            "accounts_url": self.service_urls["accounts"],
            "models_hub_url": self.service_urls["models_hub"],
            "inference_url": self.service_urls["inference"],
            "feed_url": self.service_urls["feed"],
            "service_token": SERVICE_TOKENS[ServiceName.GATEWAY],
            "rate_limit_per_minute": 100_000,
            "anon_rate_limit_per_minute": 100_000,
        }
        values.update(overrides)
        return GatewaySettings(**values)

    @contextlib.asynccontextmanager
    async def extra_gateway(self, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        """A second gateway with other settings (low limits, a test upstream), and a client."""
        async with (
            serve_app(create_gateway(self.gateway_settings(**overrides))) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            yield client


def platform_hub_settings(common: dict[str, Any], **overrides: Any) -> ModelsHubSettings:
    values = {
        **common,
        "service_token": SERVICE_TOKENS[ServiceName.MODELS_HUB],
        "secret_keys": SECRET_BOX_KEY,
        "accounts_url": common.get("accounts_url", "http://127.0.0.1:8001"),
        "validation_timeout_seconds": 120,
        "validation_memory_bytes": 4 * 1024**3,
        **overrides,
    }
    return ModelsHubSettings(**values)


def pytest_unconfigure(config: pytest.Config) -> None:
    # Only what ensure_test_servers started: the machine's own servers are never touched.
    TEST_SERVERS.stop()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    url = await create_database(ADMIN_DATABASE_URL)
    await asyncio.to_thread(upgrade_head, url)
    yield url
    await drop_database(ADMIN_DATABASE_URL, url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


@contextlib.asynccontextmanager
async def serve_platform(
    database_url: str,
    redis_url: str,
    data_dir: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> AsyncIterator[Platform]:
    """Every service and the gateway on loopback, against this database (migrated) and Redis."""
    key_file = generate_rsa_key(data_dir / "jwt.pem")
    common: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "internal_token": INTERNAL_TOKEN,
        # Overridden per service below; this one belongs to no service and opens nothing.
        "service_token": "test-unknown-service-token-0123456789",
        "service_callers": SERVICE_CALLERS,
        "data_dir": data_dir,
        "log_json": False,
        "log_level": "WARNING",
        "db_pool_size": 5,
    }
    factories: dict[str, Callable[[], Any]] = {
        "accounts": lambda: create_accounts(
            AccountsSettings(
                **{**common, "service_token": SERVICE_TOKENS[ServiceName.ACCOUNTS]},
                jwt_private_key_file=key_file,
            )
        ),
        "models_hub": lambda: create_models_hub(platform_hub_settings(common)),
        "inference": lambda: create_inference(
            InferenceSettings(**{**common, "service_token": SERVICE_TOKENS[ServiceName.INFERENCE]})
        ),
        "feed": lambda: create_feed(
            FeedSettings(
                **{**common, "service_token": SERVICE_TOKENS[ServiceName.FEED]},
                # Live streams end (clients resume) well before the API fuzzer's 60 s request
                # timeout: it reads a whole body, and these would otherwise run for an hour.
                stream_lifetime_seconds=20,
            )
        ),
    }
    async with contextlib.AsyncExitStack() as stack:
        urls: dict[str, str] = {}
        apps: dict[str, Any] = {}
        for name, factory in factories.items():
            apps[name] = factory()
            urls[name] = await stack.enter_async_context(serve_app(apps[name]))
            # The services that follow ask accounts about users and the hub about models (and
            # the feed asks inference for generations, template renders and imports).
            if name in ("accounts", "models_hub", "inference"):
                common[f"{name}_url"] = urls[name]
        platform = Platform(
            gateway_url="",
            service_urls=urls,
            common=common,
            jwt_key_file=key_file,
            sessionmaker=sessionmaker,
            redis=redis,
            apps=apps,
        )
        apps["gateway"] = create_gateway(platform.gateway_settings())
        platform.gateway_url = await stack.enter_async_context(serve_app(apps["gateway"]))
        yield platform


@pytest.fixture(scope="session")
async def platform(
    database_url: str, engine: AsyncEngine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    await redis.flushdb()
    data_dir = tmp_path_factory.mktemp("data")
    async with serve_platform(
        database_url, REDIS_URL, data_dir, create_sessionmaker(engine), redis
    ) as platform:
        yield platform
    await redis.aclose()


_DEADLOCK = "40P01"


async def _truncate_all(engine: AsyncEngine, attempts: int = 5) -> None:
    """Empty every table. Work a previous test left running (a job, a relay, a browser's last
    request) may still be writing: the lock order of its transaction and of TRUNCATE can then
    deadlock, and PostgreSQL aborts one of them; if that is the TRUNCATE, it runs again."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    for attempt in range(attempts):
        try:
            async with engine.begin() as connection:
                await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            return
        except DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) != _DEADLOCK or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty tables, Redis and storage before each test that uses the platform or database."""
    if not {"platform", "engine"} & set(request.fixturenames):
        yield
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    await _truncate_all(engine)
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()
    if "platform" in request.fixturenames:
        platform: Platform = request.getfixturevalue("platform")
        shutil.rmtree(platform.common["data_dir"] / "storage", ignore_errors=True)
    yield


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        yield client
