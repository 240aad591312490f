"""A route whose database or Redis cannot be reached answers 503 with Retry-After, not 500.

The clients are the real ones every service builds (shared.db's engine, shared.redis_client),
pointed at a loopback port where nothing listens.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from shared.db import SessionDep, create_engine, create_sessionmaker
from shared.errors import install_error_handlers
from shared.redis_client import create_redis


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/llmnet")
    redis = create_redis(f"redis://127.0.0.1:{closed_port()}/0")
    app.state.sessionmaker = create_sessionmaker(engine)

    @app.get("/from-database")
    async def from_database(session: SessionDep) -> int:
        return int(await session.scalar(text("SELECT 1")))

    @app.get("/from-redis")
    async def from_redis() -> str | None:
        value: str | None = await redis.get("anything")
        return value

    install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await redis.aclose()
    await engine.dispose()


@pytest.mark.parametrize(
    ("path", "code"),
    [("/from-database", "database_unavailable"), ("/from-redis", "redis_unavailable")],
)
async def test_an_unreachable_dependency_answers_503_with_retry_after(
    client: httpx.AsyncClient, path: str, code: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["code"] == code
    assert "try again" in body["detail"]
