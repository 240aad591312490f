"""The live feed over WebSocket (`/api/v1/feed/ws`): the same events and resume semantics as
the SSE stream, as JSON messages.

The gateway authenticates the client (token in the first message or the
`Sec-WebSocket-Protocol` header, never the URL) and opens this socket with the verified
identity headers. The first message from the client is `{"last_event_id": "<id>"}` (or `{}` to
start from now); then the server sends `{"event": "ready"|"post"|"counts", "id": ..., "data":
...}` and `{"event": "ping"}` when idle. A client that reconnects sends the last `id` it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from fastapi.sse import ServerSentEvent
from redis.asyncio import Redis
from starlette.requests import Request

from services.feed.deps import FeedContext
from services.feed.timelines.stream import live_feed, start_id
from shared.auth.identity import get_identity
from shared.errors import LLMNetError

router = APIRouter(prefix="/api/v1/feed")
_FIRST_MESSAGE_SECONDS = 10.0
POLICY_VIOLATION = 1008


def message(event: ServerSentEvent) -> str:
    if event.raw_data is not None:  # JSON already (shared by every feed the event reaches)
        data = json.loads(event.raw_data)
    elif hasattr(event.data, "model_dump"):
        data = event.data.model_dump(mode="json")
    else:
        data = event.data
    return json.dumps({"event": event.event, "id": event.id, "data": jsonable_encoder(data)})


async def _error(socket: WebSocket, code: str, detail: str) -> None:
    await socket.send_text(json.dumps({"event": "error", "code": code, "detail": detail}))
    await socket.close(code=POLICY_VIOLATION, reason=code)


async def _first_message(socket: WebSocket) -> dict[str, Any]:
    raw = await asyncio.wait_for(socket.receive_text(), _FIRST_MESSAGE_SECONDS)
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("not an object")
    return body


@router.websocket("/ws")
async def live_socket(socket: WebSocket) -> None:
    ctx: FeedContext = socket.app.state.feed
    redis: Redis = socket.app.state.redis
    await socket.accept()
    try:
        identity = await get_identity(cast(Request, socket))
    except LLMNetError as exc:
        await _error(socket, exc.code, exc.detail)
        return
    if identity is None:
        await _error(socket, "authentication_required", "Authenticate through the gateway.")
        return
    try:
        first = await _first_message(socket)
        after = start_id(first.get("last_event_id"))
    except (TimeoutError, ValueError):
        await _error(socket, "invalid_first_message", 'Send {"last_event_id": "<id>"} or {}.')
        return
    except LLMNetError as exc:
        await _error(socket, exc.code, exc.detail)
        return
    except WebSocketDisconnect:
        return
    await _relay(
        socket, live_feed(ctx, redis, identity, after), ctx.settings.stream_heartbeat_seconds
    )


async def _relay(socket: WebSocket, events: Any, heartbeat: float) -> None:
    queue: asyncio.Queue[ServerSentEvent] = asyncio.Queue(maxsize=100)

    async def produce() -> None:
        async for event in events:
            await queue.put(event)

    async def consume() -> None:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                await socket.send_text(json.dumps({"event": "ping"}))
                continue
            await socket.send_text(message(event))

    async def closed() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await socket.receive_text()  # clients send nothing more; wait for the close

    tasks = [asyncio.create_task(t()) for t in (produce, consume, closed)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await events.aclose()
        with contextlib.suppress(RuntimeError):
            await socket.close()
