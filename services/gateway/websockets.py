"""WebSocket routes the gateway proxies: the feed's live socket (`/api/v1/feed/ws`).

Browsers cannot set headers on a WebSocket, and a token in the URL ends up in logs, so the
client authenticates with either the `Sec-WebSocket-Protocol` header (offer the protocols
`llmnet.feed` and `bearer.<access token or API key>`; the gateway answers `llmnet.feed`) or its
first message (`{"token": "...", "last_event_id": "..."}`). The gateway verifies the credential
exactly as for HTTP, opens the upstream socket with the verified identity headers, forwards
the first message without the token, then relays messages both ways until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from services.gateway.auth import Authenticator
from services.gateway.config import GatewaySettings
from services.gateway.routing import upstream_urls
from services.gateway.upstreams import Upstreams
from shared.auth.identity import identity_headers
from shared.errors import LLMNetError

PROTOCOL = "llmnet.feed"
_BEARER = "bearer."
_ROUTES = {"/api/v1/feed/ws": "feed"}
_FIRST_MESSAGE_SECONDS = 10.0
_POLICY_VIOLATION = 1008
_UNAVAILABLE = 1013


async def _refuse(socket: WebSocket, code: str, detail: str, close: int) -> None:
    await socket.send_text(json.dumps({"event": "error", "code": code, "detail": detail}))
    await socket.close(code=close, reason=code)


async def _first_message(socket: WebSocket) -> dict[str, Any] | None:
    try:
        body = json.loads(await asyncio.wait_for(socket.receive_text(), _FIRST_MESSAGE_SECONDS))
    except (TimeoutError, ValueError):
        return None
    return body if isinstance(body, dict) else None


async def _pump_up(socket: WebSocket, upstream: aiohttp.ClientWebSocketResponse) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await upstream.send_str(await socket.receive_text())


async def _pump_down(socket: WebSocket, upstream: aiohttp.ClientWebSocketResponse) -> None:
    async for frame in upstream:
        if frame.type != aiohttp.WSMsgType.TEXT:
            break
        await socket.send_text(frame.data)


async def proxy_socket(socket: WebSocket, service: str) -> None:
    app = socket.app
    settings: GatewaySettings = app.state.settings
    authenticator: Authenticator = app.state.authenticator
    upstreams: Upstreams = app.state.upstreams
    offered = list(socket.scope.get("subprotocols") or [])
    token = next((p[len(_BEARER) :] for p in offered if p.startswith(_BEARER)), None)
    await socket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
    first = await _first_message(socket)
    if first is None:
        await _refuse(
            socket,
            "invalid_first_message",
            'Send a JSON object first: {"token": "...", "last_event_id": "..."}.',
            _POLICY_VIOLATION,
        )
        return
    token = token or first.pop("token", None)
    first.pop("token", None)
    if not isinstance(token, str) or not token:
        await _refuse(
            socket,
            "authentication_required",
            "Authenticate with the first message's 'token' or a 'bearer.<token>' subprotocol.",
            _POLICY_VIOLATION,
        )
        return
    try:
        auth = await authenticator.authenticate(f"Bearer {token}")
    except LLMNetError as exc:
        await _refuse(socket, exc.code, exc.detail, _POLICY_VIOLATION)
        return
    url = upstream_urls(settings)[service].rstrip("/") + socket.url.path
    try:
        upstream = await upstreams[service].ws_connect(
            url,
            headers=identity_headers(auth.identity, settings.internal_token),
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
        )
    except (aiohttp.ClientError, TimeoutError):
        await _refuse(
            socket, "upstream_unavailable", f"The {service} service is unreachable.", _UNAVAILABLE
        )
        return
    try:
        await upstream.send_str(json.dumps(first))
        tasks = [
            asyncio.create_task(_pump_up(socket, upstream)),
            asyncio.create_task(_pump_down(socket, upstream)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await upstream.close()
        with contextlib.suppress(RuntimeError):
            await socket.close()


def _route(service: str) -> Callable[[WebSocket], Awaitable[None]]:
    async def route(socket: WebSocket) -> None:
        await proxy_socket(socket, service)

    return route


def install_websockets(app: FastAPI) -> None:
    for path, service in _ROUTES.items():
        app.add_api_websocket_route(path, _route(service))
