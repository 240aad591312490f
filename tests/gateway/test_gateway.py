"""The gateway as a client sees it: routing, streaming, limits, errors, docs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openapi_spec_validator import validate

from shared.settings import UPLOAD_FRAMING_BYTES
from shared.testing import serve_app
from tests.factories import admin_session, user_session


class StreamProbe:
    """An upstream that streams SSE events only when the test allows, and notices disconnects."""

    def __init__(self) -> None:
        self.sent = 0
        self.proceed = asyncio.Event()
        self.closed = asyncio.Event()
        self.received_body = b""
        self.received_headers: dict[str, str] = {}
        self.url = ""
        self.client: httpx.AsyncClient | None = None
        self.app = FastAPI()

        @self.app.get("/api/v1/feed/probe-stream")
        async def stream() -> StreamingResponse:
            async def events() -> AsyncIterator[bytes]:
                try:
                    for number in range(1, 100):
                        self.sent = number
                        yield f"id: {number}\ndata: event {number}\n\n".encode()
                        await self.proceed.wait()
                        self.proceed.clear()
                finally:
                    self.closed.set()

            return StreamingResponse(events(), media_type="text/event-stream")

        @self.app.post("/api/v1/posts/echo-size")
        async def echo(request: Request) -> dict[str, int]:
            self.received_headers = dict(request.headers)
            self.received_body = await request.body()
            return {"size": len(self.received_body)}


@pytest.fixture
async def probe(platform):
    probe = StreamProbe()
    async with serve_app(probe.app) as url, platform.extra_gateway(feed_url=url) as client:
        probe.url = url
        probe.client = client
        yield probe


async def test_routes_to_accounts_and_echoes_request_id(client):
    response = await client.get("/api/v1/auth/jwks", headers={"X-Request-ID": "trace-123"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-123"


async def test_unknown_route_is_json_404(client):
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "not_found"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_sse_reaches_the_client_event_by_event(probe, platform):
    user = await user_session(probe.client)
    async with probe.client.stream(
        "GET", "/api/v1/feed/probe-stream", headers=user.headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        # The upstream sends event 2 only after we have event 1: a buffering proxy would hang.
        for number in (1, 2, 3):
            line = await asyncio.wait_for(anext(lines), 5)
            assert line == f"id: {number}"
            assert probe.sent == number
            assert await asyncio.wait_for(anext(lines), 5) == f"data: event {number}"
            assert await asyncio.wait_for(anext(lines), 5) == ""
            probe.proceed.set()


async def test_client_disconnect_closes_the_upstream_request(probe):
    user = await user_session(probe.client)
    async with probe.client.stream(
        "GET", "/api/v1/feed/probe-stream", headers=user.headers
    ) as response:
        first = await asyncio.wait_for(anext(response.aiter_lines()), 5)
        assert first == "id: 1"
    # Leaving the block closed our connection; the upstream generator must be torn down.
    await asyncio.wait_for(probe.closed.wait(), 5)
    assert probe.sent == 1


async def test_upstream_down_is_502(platform):
    async with platform.extra_gateway(feed_url="http://127.0.0.1:9") as client:
        response = await client.get("/api/v1/feed")
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unavailable"


async def test_anonymous_rate_limit_is_429_with_retry_after(platform):
    async with platform.extra_gateway(anon_rate_limit_per_minute=3) as client:
        statuses = [(await client.get("/api/v1/auth/jwks")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await client.get("/api/v1/auth/jwks")
        assert limited.json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 61


async def test_rate_limit_is_per_user(platform):
    async with platform.extra_gateway(rate_limit_per_minute=2) as client:
        first = await user_session(client)
        second = await user_session(client)
        for _ in range(2):
            assert (await client.get("/api/v1/users/me", headers=first.headers)).status_code == 200
        assert (await client.get("/api/v1/users/me", headers=first.headers)).status_code == 429
        assert (await client.get("/api/v1/users/me", headers=second.headers)).status_code == 200


async def test_body_over_the_declared_limit_is_413(platform):
    async with platform.extra_gateway(max_body_bytes=2048) as client:
        response = await client.post(
            "/api/v1/auth/register",
            content=b"x" * 4096,
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_model_uploads_have_their_own_body_limit(platform):
    async with platform.extra_gateway(max_body_bytes=2048, max_upload_bytes=1 << 20) as client:
        user = await user_session(client)
        body = b"x" * 4096
        ordinary = await client.post("/api/v1/models", content=body, headers=user.headers)
        assert ordinary.status_code == 413
        upload = await client.post(
            "/api/v1/models/00000000-0000-0000-0000-000000000000/versions",
            content=body,
            headers={**user.headers, "content-type": "multipart/form-data; boundary=x"},
        )
        # Past the gateway: the model hub itself answers (no such model).
        assert upload.status_code == 404
        too_big = await client.post(
            "/api/v1/models/00000000-0000-0000-0000-000000000000/versions",
            # Past the cap and the multipart framing the gateway allows around it.
            content=b"x" * ((1 << 20) + UPLOAD_FRAMING_BYTES + 1),
            headers=user.headers,
        )
        assert too_big.status_code == 413


async def test_chunked_body_over_the_limit_is_413(platform, probe):
    async with platform.extra_gateway(max_body_bytes=2048, feed_url=probe.url) as client:
        user = await user_session(client)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b"y" * 512

        response = await client.post(
            "/api/v1/posts/echo-size", content=chunks(), headers=user.headers
        )
    assert response.status_code == 413
    assert probe.received_body == b""


async def test_large_bodies_stream_through_intact(probe):
    user = await user_session(probe.client)

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(64):
            yield bytes([index]) * 65536

    response = await probe.client.post(
        "/api/v1/posts/echo-size", content=chunks(), headers=user.headers
    )
    assert response.status_code == 200
    assert response.json() == {"size": 64 * 65536}
    assert probe.received_body[:3] == b"\x00\x00\x00"
    assert probe.received_body[-1] == 63
    # Sent without a length, it goes on in chunks.
    assert probe.received_headers.get("transfer-encoding") == "chunked"


async def test_a_large_body_of_declared_length_streams_with_that_length(probe):
    user = await user_session(probe.client)
    size = 4 * (1 << 20)

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(4):
            yield bytes([index]) * (1 << 20)

    response = await probe.client.post(
        "/api/v1/posts/echo-size",
        content=chunks(),
        headers={**user.headers, "Content-Length": str(size)},
    )
    assert response.json() == {"size": size}
    assert probe.received_headers["content-length"] == str(size)
    assert "transfer-encoding" not in probe.received_headers
    assert probe.received_body[-1] == 3


async def test_protected_routes_need_credentials(client):
    for method, path in (
        ("GET", "/api/v1/users/me"),
        ("GET", "/v1/models"),
        ("POST", "/api/v1/posts"),
        ("GET", "/api/v1/admin/users"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 401, path
        body = response.json()
        if path.startswith("/v1/"):  # OpenAI's shape on its API
            assert body["error"]["type"] == "authentication_error"
            body = body["error"]
        assert body["code"] == "authentication_required"


async def test_merged_openapi_validates_and_lists_service_paths(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    paths = document["paths"]
    for path in (
        "/api/v1/models",
        "/api/v1/models/{model_id}/versions",
        "/api/v1/providers",
        "/api/v1/auth/login",
        "/api/v1/users/me",
        "/api/v1/users/{username}/follow",
        "/api/v1/users/me/api-keys",
        "/api/v1/admin/users",
    ):
        assert path in paths
    assert not any(p.startswith(("/internal", "/healthz", "/readyz")) for p in paths)
    flow = document["components"]["securitySchemes"]["OAuth2Password"]["flows"]["password"]
    assert flow["tokenUrl"] == "/api/v1/auth/login"
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_cors_preflight_is_answered(client):
    response = await client.options(
        "/api/v1/users/me",
        headers={
            "Origin": "https://frontend.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://frontend.example")


async def test_probes_and_metrics(client, platform):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    await client.get("/api/v1/auth/jwks")
    admin = await admin_session(client, platform)
    metrics = (await client.get("/metrics", headers=admin.headers)).text
    assert 'route="/api/v1/auth"' in metrics
    assert "llmnet_http_request_duration_seconds_bucket" in metrics
    async with httpx.AsyncClient(base_url=platform.service_urls["accounts"]) as direct:
        service_ready = (await direct.get("/readyz")).json()
    assert service_ready["checks"] == {"redis": "ok", "database": "ok"}
