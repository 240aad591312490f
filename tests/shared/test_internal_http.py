"""Service-to-service clients let go of idle connections before the called service does: a
request sent on a connection uvicorn is closing fails for nothing (a 503 to the user)."""

from __future__ import annotations

import uvicorn

from shared.auth.service_credentials import ServiceName
from shared.internal_http import KEEPALIVE_SECONDS, internal_client


async def test_idle_connections_are_dropped_before_uvicorn_closes_them() -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]  # pragma: no cover
        return None

    assert uvicorn.Config(app).timeout_keep_alive > KEEPALIVE_SECONDS
    client = internal_client("http://127.0.0.1:1", ServiceName.FEED, "token", timeout=3.0)
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert pool._keepalive_expiry == KEEPALIVE_SECONDS
    await client.aclose()
