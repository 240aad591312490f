"""Server-sent event streams: event ids, `Last-Event-ID`, heartbeats, a lifetime cap, cleanup.

Built on FastAPI's `fastapi.sse`: `ServerSentEvent` is the event (data, event, id, retry,
comment, with its single-line checks), `format_sse_event` writes it in the wire format and
`EventSourceResponse` is the response class. FastAPI's own streaming mode, a generator
*endpoint* declared with `response_class=EventSourceResponse`, is not used because:

- the endpoint is the generator, so its status line (200) is sent before the generator runs:
  it cannot answer a 4xx/5xx JSON error when the work fails before the first event (the OpenAI
  routes' model load and prompt check), nor plain JSON when the request asks for no stream;
- its keep-alive interval is one process-wide module variable, and it has no lifetime cap;
- it documents the stream with OpenAPI 3.2's `itemSchema`, which the platform's OpenAPI 3.1
  document refuses (openapi-spec-validator: "'itemSchema' was unexpected").

So an endpoint does its checks first and returns `event_stream(...)`:

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for post in posts_after(last_event_id):
                yield ServerSentEvent(data=post, id=str(post.id))
        finally:
            ...  # runs when the stream ends, the client goes away or the lifetime is up

    @router.get("/stream", responses=event_stream_responses(PostRead, description="..."))
    async def stream(last_event_id: LastEventId = None) -> EventStreamResponse:
        return event_stream(events(), heartbeat=15, lifetime=3600)

- `data` is always JSON (a pydantic model through `model_dump_json`, anything else compact
  `json.dumps`), as FastAPI has it; `raw_data` goes out as given (`[DONE]`).
- A heartbeat, the comment line `: ping`, goes out whenever nothing was sent for `heartbeat`
  seconds, so proxies and clients keep an idle stream open.
- After `lifetime` seconds the stream ends (EventSource clients reconnect with the last id).
- When the process shuts down (shared/shutdown.py), a stream still open when the grace is up
  ends with `event: error` and `{"code": "shutting_down", "detail"}`: reconnect, with the
  last id, to another (or the restarted) server.
- The response races the ASGI receive channel for `http.disconnect` (`request.is_disconnected()`
  is unreliable under middleware). When the client goes away, or the lifetime is up, the events
  generator is cancelled at the `await` it is in (CancelledError), or closed at its `yield`
  (GeneratorExit): its `finally` runs either way, before the response returns. The generator
  runs in a task of its own, so a slow step never delays a heartbeat; it must not hold an anyio
  cancel scope across a `yield`.

`event_stream_responses` and `document_event_payloads` put the events' `data` schemas into an
app's OpenAPI document (as `x-event-data` of the `text/event-stream` content, OpenAPI 3.1 having
no item schema).

Exports: EventStreamResponse, event_stream, LastEventId, encode_event, ServerSentEvent,
event_stream_responses, document_event_payloads, DEFAULT_HEARTBEAT_SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Header
from fastapi.encoders import jsonable_encoder
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, ServerSentEvent, format_sse_event
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from shared import shutdown

__all__ = [
    "DEFAULT_HEARTBEAT_SECONDS",
    "STREAM_ID_PATTERN",
    "EventStreamResponse",
    "LastEventId",
    "ServerSentEvent",
    "document_event_payloads",
    "encode_event",
    "event_stream",
    "event_stream_responses",
    "is_stream_id",
]

DEFAULT_HEARTBEAT_SECONDS = 15.0

# A Redis stream id (`<ms>-<seq>`): the event id of every stream resumed from Redis Streams.
# At most 19 digits each: any id that matches fits the unsigned 64 bits Redis reads each part
# into (a 20-digit one may not, and XREAD would fail with "Invalid stream ID").
STREAM_ID_PATTERN = r"^[0-9]{1,19}-[0-9]{1,19}$"
_STREAM_ID = re.compile(STREAM_ID_PATTERN)


def is_stream_id(value: str) -> bool:
    """Whether `value` can be a `Last-Event-ID` of a stream read from Redis Streams."""
    return _STREAM_ID.fullmatch(value) is not None


STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=256,
        description="The `id` of the last event received: EventSource clients send it when "
        "they reconnect, and the stream resumes after that event.",
    ),
]

_REF = "#/components/schemas/{model}"


def encode_event(event: ServerSentEvent) -> bytes:
    """One event in the wire format (`data: {json}\\n\\n` for an event with only data)."""
    data: str | None
    if event.raw_data is not None:
        data = event.raw_data
    elif event.data is None:
        data = None
    elif isinstance(event.data, BaseModel):
        data = event.data.model_dump_json()
    else:
        data = json.dumps(jsonable_encoder(event.data), separators=(",", ":"))
    return format_sse_event(
        data_str=data, event=event.event, id=event.id, retry=event.retry, comment=event.comment
    )


_SHUTTING_DOWN = encode_event(
    ServerSentEvent(
        event="error",
        data={
            "code": "shutting_down",
            "detail": "The server is restarting; reconnect (with Last-Event-ID) to resume.",
        },
    )
)


def _single(error: BaseException) -> BaseException:
    """The one error inside (nested) task-group exception groups, if there is just one."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


class EventStreamResponse(EventSourceResponse):
    """A `text/event-stream` response sending `events` (see the module docstring)."""

    def __init__(
        self,
        events: AsyncIterator[ServerSentEvent],
        *,
        heartbeat: float | None = DEFAULT_HEARTBEAT_SECONDS,
        lifetime: float | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if heartbeat is not None and heartbeat <= 0:
            raise ValueError("heartbeat must be positive (or None for none)")
        if lifetime is not None and lifetime <= 0:
            raise ValueError("lifetime must be positive (or None for no cap)")
        self.events = events
        self.heartbeat = heartbeat
        self.lifetime = lifetime
        # StreamingResponse.__init__ less its body iterator: __call__ sends the frames itself.
        self.status_code = status_code
        self.background = None
        self.init_headers({**STREAM_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as connection:
                connection.start_soon(_cancel_on_disconnect, receive, connection.cancel_scope)
                start = {"type": "http.response.start", "status": self.status_code}
                await send({**start, "headers": self.raw_headers})
                await self._stream(send)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                connection.cancel_scope.cancel()
        except BaseExceptionGroup as errors:
            raise _single(errors) from None
        finally:
            # Never iterated (sending the status line failed): close it all the same.
            with anyio.CancelScope(shield=True):
                await _close(self.events)
        if self.background is not None:  # FastAPI's BackgroundTasks, as Starlette runs them
            await self.background()

    async def _stream(self, send: Send) -> None:
        # One frame at a time: an asyncio.Queue keeps a frame in its buffer until taken, so a
        # wait cut short by the heartbeat never loses one (an anyio memory stream hands a frame
        # straight to the waiting receiver, and cancelling that receiver then drops it).
        frames: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        deadline = None if self.lifetime is None else anyio.current_time() + self.lifetime
        async with anyio.create_task_group() as producer:
            producer.start_soon(self._produce, frames)
            while True:
                wait = self.heartbeat if self.heartbeat is not None else math.inf
                if deadline is not None:
                    wait = min(wait, deadline - anyio.current_time())
                ending = shutdown.stream_deadline()  # set once the server stops listening
                if ending is not None:
                    wait = min(wait, ending - time.monotonic())
                frame: bytes | None = KEEPALIVE_COMMENT
                with anyio.move_on_after(max(wait, 0)) as waiting:
                    frame = await frames.get()
                if frame is None:
                    break  # the events ended
                if waiting.cancelled_caught and ending is not None and time.monotonic() >= ending:
                    body = {"type": "http.response.body", "body": _SHUTTING_DOWN, "more_body": True}
                    await send(body)
                    break  # the server is going away
                expired = deadline is not None and anyio.current_time() >= deadline
                if waiting.cancelled_caught and expired:
                    break  # the lifetime is up
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            # Ended or expired: stop the generator; leaving the group waits for its cleanup.
            producer.cancel_scope.cancel()

    async def _produce(self, frames: asyncio.Queue[bytes | None]) -> None:
        try:
            async for event in self.events:
                await frames.put(encode_event(event))
            await frames.put(None)
        finally:
            with anyio.CancelScope(shield=True):
                await _close(self.events)


async def _close(events: AsyncIterator[Any]) -> None:
    """Close an async generator stopped at a `yield` (GeneratorExit there runs its cleanup);
    a no-op for one that has finished, or for a plain iterator."""
    aclose: Callable[[], Awaitable[Any]] | None = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    # The body was read before the endpoint returned: what comes next is the client leaving.
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def event_stream(
    events: AsyncIterator[ServerSentEvent],
    *,
    heartbeat: float | None = DEFAULT_HEARTBEAT_SECONDS,
    lifetime: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> EventStreamResponse:
    """Stream `events`: a heartbeat after `heartbeat` idle seconds, the end after `lifetime`
    seconds (None: no cap), the generator's cleanup on every ending."""
    return EventStreamResponse(events, heartbeat=heartbeat, lifetime=lifetime, headers=headers)


def event_stream_responses(
    *payloads: type[BaseModel], description: str
) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route whose 200 may be an event stream carrying `payloads` as `data`.
    Register the payloads with `document_event_payloads(app, ...)` so the document has them."""
    refs = [{"$ref": _REF.format(model=p.__name__)} for p in payloads]
    return {
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string", "description": description},
                    "x-event-data": refs[0] if len(refs) == 1 else {"oneOf": refs},
                }
            }
        }
    }


def document_event_payloads(app: FastAPI, *payloads: type[BaseModel]) -> None:
    """Add `payloads` (and the models they use) to the app's OpenAPI components."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()
        if fresh:
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for payload in payloads:
                schema = payload.model_json_schema(ref_template=_REF, mode="serialization")
                for name, definition in schema.pop("$defs", {}).items():
                    schemas.setdefault(name, definition)
                schemas.setdefault(payload.__name__, schema)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
