"""A fine-tune's own event stream: what its SSE endpoint serves and resumes.

Each state change and progress report is written twice: as a `finetune.*` domain event through
the outbox (for other services; one stream shared by every job and trimmed by length) and here,
after its transaction commits, onto a Redis Stream per job (`XADD`, expiring after
`finetune_events_ttl_seconds`). A per-job stream lets a client resume with `Last-Event-ID` (a
stream id) or replay from the start with one `XREAD`, instead of scanning every job's events.
If the worker dies between its commit and the `XADD`, the next report carries the whole state
again, and a final state the stream never got is read from the job row.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis

from services.models_hub.fine_tunes.schemas import FineTuneEvent
from services.models_hub.models import FINAL_FINE_TUNE_STATUSES
from shared.errors import BadRequest
from shared.sse import STREAM_ID_PATTERN, is_stream_id

# Below the Redis client's socket timeout (5 s): a blocking read must answer before it.
BLOCK_MS = 2000

# A stream id (shared.sse), or empty: no id, as EventSource's first connection has none.
LAST_EVENT_ID_PATTERN = f"^({STREAM_ID_PATTERN.strip('^$')})?$"


class InvalidLastEventId(BadRequest):
    code = "invalid_last_event_id"


def events_key(job_id: uuid.UUID) -> str:
    return f"llmnet:finetune:{job_id}:events"


def start_after(last_event_id: str | None) -> str:
    """Where a stream starts: after `Last-Event-ID`, or from the first event ("0")."""
    if last_event_id is None:
        return "0"
    if last_event_id and not is_stream_id(last_event_id):
        raise InvalidLastEventId(
            "Last-Event-ID must be the id of an event this stream sent ('<ms>-<seq>'); send "
            "none to start from the beginning."
        )
    return last_event_id or "0"


async def publish(redis: Redis, kind: str, event: FineTuneEvent, ttl: int) -> str:
    key = events_key(event.fine_tune_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(key, {"event": kind, "data": event.model_dump_json()})
        pipe.expire(key, ttl)
        stream_id, _ = await pipe.execute()
    return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)


def is_final(event: FineTuneEvent) -> bool:
    return event.status in FINAL_FINE_TUNE_STATUSES


async def follow(
    redis: Redis,
    job_id: uuid.UUID,
    after: str,
    *,
    job_finished: Callable[[], Awaitable[FineTuneEvent | None]],
) -> AsyncIterator[tuple[str | None, str, FineTuneEvent]]:
    """(stream id, event name, event) after `after`, live, until the job's final state.

    When nothing comes for a read, `job_finished` (the job row) says whether the job ended
    without its final event reaching the stream (worker died, stream expired): then that state
    is sent, without an id, and the stream ends."""
    key = events_key(job_id)
    while True:
        answer = await redis.xread({key: after}, block=BLOCK_MS, count=100)
        if not answer:
            final = await job_finished()
            if final is None:
                continue
            # One more read: the final event may have landed since the last one.
            if not await redis.xread({key: after}, count=1):
                yield None, "status", final
                return
            continue
        for _, entries in answer:
            for stream_id, fields in entries:
                after = stream_id
                event = FineTuneEvent.model_validate_json(fields["data"])
                yield stream_id, fields["event"], event
                if fields["event"] == "status" and is_final(event):
                    return
