"""The live feed over WebSocket through the gateway: token in the subprotocol or the first
message (never the URL), a new post live, resume after a forced disconnect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.factories import user_session
from tests.feed.conftest import publish


def _url(platform) -> str:
    return platform.gateway_url.replace("http://", "ws://") + "/api/v1/feed/ws"


async def _next(socket: ClientConnection, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            message = json.loads(await socket.recv())
            if message["event"] != "ping":
                assert message["event"] == kind, message
                return dict(message)


async def test_a_post_arrives_over_the_socket_and_a_reconnect_resumes(
    client, platform, worker_ctx, owner, llama
):
    fan = await user_session(client)
    follow = await client.post(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
    assert follow.status_code == 200

    protocols = ["llmnet.feed", f"bearer.{fan.access_token}"]
    async with connect(_url(platform), subprotocols=protocols) as socket:  # type: ignore[arg-type]
        assert socket.subprotocol == "llmnet.feed"
        await socket.send("{}")
        await _next(socket, "ready")
        first = await publish(client, worker_ctx, owner, llama)
        live = await _next(socket, "post")
    assert live["data"]["id"] == first["id"]

    second = await publish(client, worker_ctx, owner, llama)
    third = await publish(client, worker_ctx, owner, llama)
    async with connect(_url(platform)) as socket:
        await socket.send(json.dumps({"token": fan.access_token, "last_event_id": live["id"]}))
        await _next(socket, "ready")
        resumed = [await _next(socket, "post"), await _next(socket, "post")]
    assert [m["data"]["id"] for m in resumed] == [second["id"], third["id"]]


async def test_the_socket_refuses_missing_or_bad_credentials(platform):
    for first in ({}, {"token": "not-a-token"}):
        async with connect(_url(platform)) as socket:
            await socket.send(json.dumps(first))
            error = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert error["event"] == "error"
            assert error["code"] in {"authentication_required", "invalid_token"}
            await socket.wait_closed()
            assert socket.close_code == 1008
