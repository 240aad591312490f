"""The gateway's upstream connection pool: a connection a service closes is never reused, and
an idempotent request that meets a dead one is replayed once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from shared.testing import serve_app
from tests.factories import user_session


class FailingService:
    """A uvicorn-served service whose 500 is followed by uvicorn closing the connection.

    uvicorn closes a connection once an exception has escaped the app, which happens just
    after Starlette has sent the 500 for it. Here the exception escapes from a background task
    that waits until the next request has arrived, which turns that race (lost by the gateway
    under load, or when the service is slow to log the traceback) into a certainty.
    """

    def __init__(self) -> None:
        self.next_request = asyncio.Event()
        self.crashed = asyncio.Event()
        self.app = FastAPI()

        @self.app.get("/api/v1/posts/fails")
        async def fails() -> JSONResponse:
            self.next_request.clear()
            self.crashed.clear()
            return JSONResponse(
                {"code": "internal_error", "detail": "Internal server error."},
                status_code=500,
                background=BackgroundTask(self._crash_after_next_request),
            )

        @self.app.api_route("/api/v1/posts/echo", methods=["GET", "POST"])
        async def echo(request: Request) -> dict[str, str]:
            self.next_request.set()
            # Answer only after the crash, so a request sent on the doomed connection is lost.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.crashed.wait(), 5)
            return {"method": request.method, "body": (await request.body()).decode()}

    async def _crash_after_next_request(self) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.next_request.wait(), 5)
        finally:
            self.crashed.set()
        raise RuntimeError("unexpected error after the response")


class ClosingService:
    """An HTTP/1.1 server that answers the first request of each connection and closes the
    connection, without a byte of answer, when the next one arrives there: what any server
    does whose keep-alive timeout strikes just as a pooled connection is reused."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = False
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method = request_line.split(" ")[0]
                length = 0
                for line in header_lines:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                self.received.append((method, body))
                if answered:
                    return
                payload = json.dumps({"method": method, "body": body.decode()}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
                )
                await writer.drain()
                answered = True
        finally:
            writer.close()


@pytest.fixture
async def closing_service() -> AsyncIterator[tuple[ClosingService, str]]:
    service = ClosingService()
    server = await asyncio.start_server(service.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield service, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_500_does_not_break_the_requests_after_it(platform, method: str) -> None:
    service = FailingService()
    async with serve_app(service.app) as url, platform.extra_gateway(feed_url=url) as client:
        user = await user_session(client)
        for _ in range(2):
            failed = await client.get("/api/v1/posts/fails", headers=user.headers)
            assert failed.status_code == 500
            assert failed.json()["code"] == "internal_error"
            for number in range(5):
                body = f"request {number}" if method == "POST" else ""
                response = await client.request(
                    method, "/api/v1/posts/echo", content=body, headers=user.headers
                )
                assert response.status_code == 200, response.text
                assert response.json() == {"method": method, "body": body}


async def test_an_idempotent_request_on_a_closed_connection_is_replayed_once(
    platform, closing_service: tuple[ClosingService, str]
) -> None:
    service, url = closing_service
    async with platform.extra_gateway(feed_url=url) as client:
        user = await user_session(client)
        first = await client.get("/api/v1/posts/x", headers=user.headers)
        assert first.status_code == 200  # its connection is now pooled
        # Each of these goes out on the pooled connection, which the service closes; the
        # gateway sends it again on a fresh one, which is pooled for the next.
        for method, body in (("PUT", b"same again"), ("DELETE", b""), ("GET", b"")):
            response = await client.request(
                method, "/api/v1/posts/x", content=body, headers=user.headers
            )
            assert response.status_code == 200, (method, response.text)
            assert response.json() == {"method": method, "body": body.decode()}
            assert service.received[-2:] == [(method, body), (method, body)]


async def test_a_post_on_a_closed_connection_is_not_replayed(
    platform, closing_service: tuple[ClosingService, str]
) -> None:
    service, url = closing_service
    async with platform.extra_gateway(feed_url=url) as client:
        user = await user_session(client)
        assert (await client.get("/api/v1/posts/x", headers=user.headers)).status_code == 200
        response = await client.post("/api/v1/posts/x", content=b"once", headers=user.headers)
        assert response.status_code == 502
        error = response.json()
        assert error["code"] == "upstream_unavailable"
        assert "not replayed" in error["detail"]
        # It may have taken effect there: sending it twice could do it twice.
        assert service.received.count(("POST", b"once")) == 1
