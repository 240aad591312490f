"""Redis connections: one pooled asyncio client per process, built in the app lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 5.0


def create_redis(url: str) -> Redis:
    # Timeouts keep a stalled Redis from hanging requests, and no retries: a request fails
    # fast with a 503 (shared.errors translates connection errors) while Redis is away, and
    # the pool reconnects by itself once it is back.
    client: Redis = Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        health_check_interval=30,
    )
    return client


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


RedisDep = Annotated[Redis, Depends(_redis)]
