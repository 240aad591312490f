"""Servers for benchmarks: a throwaway migrated database and services as real processes.

Services run under uvicorn in their own processes, as in production, so that the load
generator in this process measures HTTP round trips rather than a shared event loop.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import statistics
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from llmnet.launcher import service_callers_setting
from llmnet.launcher.supervisor import ProcessSpec, Supervisor
from llmnet.migrations import upgrade_head
from shared.auth.identity import Identity, identity_headers, scopes_for
from shared.auth.service_credentials import ServiceName
from shared.secrets_box import SecretBox
from shared.testing import create_database, drop_database, generate_rsa_key

ADMIN_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
SERVICE_TOKENS = {name: f"bench-{name.value}-service-token-0123456789" for name in ServiceName}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BenchEnv:
    env: dict[str, str]
    urls: dict[str, str]
    pids: dict[str, int]


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    url = await create_database(ADMIN_DATABASE_URL, prefix="llmnet_bench")
    try:
        import asyncio

        await asyncio.to_thread(upgrade_head, url)
        yield url
    finally:
        await drop_database(ADMIN_DATABASE_URL, url)


@contextlib.contextmanager
def services(database_url: str, work_dir: Path, names: list[str]) -> Iterator[BenchEnv]:
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "INTERNAL_TOKEN": "bench-internal-token-0123456789",
        "SERVICE_CALLERS": service_callers_setting(SERVICE_TOKENS),
        # What in-process helpers (the demo seed) act as; each service gets its own below.
        "SERVICE_TOKEN": SERVICE_TOKENS[ServiceName.MODELS_HUB],
        "LLMNET_DATA_DIR": str(work_dir),
        "ACCOUNTS_JWT_PRIVATE_KEY_FILE": str(generate_rsa_key(work_dir / "jwt.pem")),
        "MODELS_HUB_SECRET_KEYS": SecretBox.generate_key(),
        "LOG_LEVEL": "WARNING",
        "GATEWAY_RATE_LIMIT_PER_MINUTE": "10000000",
        "GATEWAY_ANON_RATE_LIMIT_PER_MINUTE": "10000000",
        **{f"{name.upper()}_URL": url for name, url in urls.items() if name != "gateway"},
    }
    specs = [
        ProcessSpec(
            name=name,
            argv=[
                sys.executable,
                "-m",
                "uvicorn",
                f"services.{name}.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
            ],
            env={**env, "SERVICE_TOKEN": SERVICE_TOKENS[ServiceName(name)]},
            port=port,
        )
        for name, port in ports.items()
    ]
    supervisor = Supervisor(specs)
    supervisor.start()
    try:
        supervisor.wait_ready(timeout=120)
        pids = {name: process.pid for name, process in supervisor.processes.items()}
        yield BenchEnv(env=env, urls=urls, pids=pids)
    finally:
        supervisor.stop()


async def reset_redis_db() -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()


async def database_answers() -> bool:
    try:
        connection = await asyncpg.connect(ADMIN_DATABASE_URL, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


def percentile(samples: list[float], q: float) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


@dataclass
class BenchUser:
    gateway_headers: dict[str, str]  # Authorization: Bearer <access token>
    direct_headers: dict[str, str]  # the identity the gateway would forward to a service


async def bench_user(bench: BenchEnv, username: str, *, developer: bool = False) -> BenchUser:
    """Register and log in through the gateway; optionally flag the user a model developer."""
    password = "measure-it-42"
    async with httpx.AsyncClient(base_url=bench.urls["gateway"], timeout=30) as client:
        await client.post(
            "/api/v1/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": password},
        )
        login = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        login.raise_for_status()
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        if developer:
            await client.patch("/api/v1/users/me", json={"is_model_developer": True}, headers=auth)
        me = (await client.get("/api/v1/users/me", headers=auth)).json()
    identity = Identity(
        user_id=me["id"],
        username=username,
        role="user",
        scopes=scopes_for("user"),
        auth_method="jwt",
    )
    return BenchUser(auth, identity_headers(identity, bench.env["INTERNAL_TOKEN"]))


def machine_line() -> str:
    """CPU model, the flags that matter for inference, torch's kernel level, usable CPUs."""
    from services.inference.engine.tuning import CPU_FLAGS, cpu_features

    cpu = cpu_features()
    flags = " ".join(cpu.flags) or "none of " + " ".join(CPU_FLAGS)
    return (
        f"machine: {cpu.model}; flags: {flags}; torch kernels {cpu.capability}; "
        f"{cpu.cpus} usable CPUs; Python {platform.python_version()}"
    )


async def database_machine_line(database_url: str) -> str:
    """The machine line, and the PostgreSQL server the benchmark ran against."""
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        version = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    return f"{machine_line()}; PostgreSQL {version}"
