"""Embedded PostgreSQL and Redis, and the dev secrets: real servers and files, no mocks."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import asyncpg
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from llmnet.launcher.embedded import EmbeddedServiceError, start_postgres, start_redis
from llmnet.launcher.secrets import ensure_dev_secrets


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- Redis


def test_redis_persists_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    server = start_redis(tmp_path, port=port)
    try:
        assert server.url == f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        client.close()
    finally:
        server.stop()
    assert server.process is not None
    assert server.process.returncode is not None

    server = start_redis(tmp_path, port=port)
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        assert client.get("greeting") == b"hello"
        client.close()
    finally:
        server.stop()
    assert (tmp_path / "redis" / "appendonly.aof").exists()


def test_redis_adopts_own_server_and_rejects_foreign_port(tmp_path: Path) -> None:
    port = free_port()
    server = start_redis(tmp_path / "a", port=port)
    try:
        adopted = start_redis(tmp_path / "a", port=port)
        assert adopted.process is None
        with pytest.raises(EmbeddedServiceError, match="taken by a Redis"):
            start_redis(tmp_path / "b", port=port)
    finally:
        server.stop()


# --------------------------------------------------------------------------- PostgreSQL


async def _select_one(dsn: str) -> int:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await connection.fetchval("select 1"))
    finally:
        await connection.close()


def test_postgres_starts_serves_llmnet_and_restarts(tmp_path: Path) -> None:
    port = free_port()
    server = start_postgres(tmp_path, port=port)
    try:
        assert server.database_url == f"postgresql+asyncpg://postgres@127.0.0.1:{port}/llmnet"
        assert asyncio.run(_select_one(server.dsn)) == 1
        # A second start while running adopts the same postmaster.
        assert start_postgres(tmp_path, port=port).port == port
    finally:
        server.stop()
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()

    server = start_postgres(tmp_path, port=port)
    try:
        assert asyncio.run(_select_one(server.dsn)) == 1
    finally:
        server.stop()


# --------------------------------------------------------------------------- secrets


def test_dev_secrets_are_generated_once(tmp_path: Path) -> None:
    first = ensure_dev_secrets(tmp_path)
    second = ensure_dev_secrets(tmp_path)
    assert first == second
    assert len(first.internal_token) >= 32
    for path in (first.jwt_private_key_file, tmp_path / "internal_token"):
        assert path.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(first.jwt_private_key_file.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
