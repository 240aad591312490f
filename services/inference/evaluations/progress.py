"""An evaluation's progress events on a Redis Stream, resumable with `Last-Event-ID`.

The job appends `progress` events (status, stage, done/total) and one `done` event at the end;
the stream id of each entry is its SSE event id, so a client that reconnects with the last id
it saw continues exactly after it (`XREAD`), from any replica, as answers' streams do
(messages/buffer.py). The stream expires INFERENCE_EVALUATION_EVENTS_TTL_SECONDS after its last
event; a client arriving later gets the final state from the row instead.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from services.inference.evaluations.schemas import ProgressEvent
from shared.errors import BadRequest
from shared.sse import is_stream_id

# Below the Redis client's socket timeout (5 s): a blocking read must answer before it.
BLOCK_MS = 2000
DONE = "done"
PROGRESS = "progress"


class InvalidLastEventId(BadRequest):
    code = "invalid_last_event_id"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    event: str
    data: str  # JSON


def events_key(kind: str, run_id: uuid.UUID) -> str:
    return f"llmnet:inference:{kind}:{run_id}:events"


def start_after(value: str | None) -> str:
    """Where to read from: after `Last-Event-ID`, or from the start ("0")."""
    if value is None or value == "":
        return "0"
    if not is_stream_id(value):
        raise InvalidLastEventId(
            "Last-Event-ID must be the id of an event of this stream ('<ms>-<seq>'); send none "
            "to start from the beginning."
        )
    return value


async def publish(redis: Redis, key: str, event: str, payload: ProgressEvent, ttl: int) -> str:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(key, {"event": event, "data": payload.model_dump_json()})
        pipe.expire(key, ttl)
        entry_id, _ = await pipe.execute()
    return _text(entry_id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def follow(
    redis: Redis, key: str, after: str, *, still_running: Any
) -> AsyncIterator[StoredEvent]:
    """Events after `after`, live, until `done`. `still_running()` (awaitable) is asked when
    nothing came for a while and the stream is gone: False ends the stream."""
    while True:
        answer = await redis.xread({key: after}, block=BLOCK_MS, count=100)
        if not answer:
            if not await redis.exists(key) and not await still_running():
                return
            continue
        for _, entries in answer:
            for entry_id, fields in entries:
                values = {_text(k): _text(v) for k, v in fields.items()}
                event = StoredEvent(_text(entry_id), values.get("event", ""), values["data"])
                after = event.id
                yield event
                if event.event == DONE:
                    return
