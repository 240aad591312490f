"""Domain events: written to an outbox in the same transaction as the change, relayed to
Redis Streams, consumed through consumer groups.

Exports: record_event, stream_for, EventRelay, Event, EventConsumer.

Delivery is at least once: a relay that dies between XADD and marking the row publishes that
event again, so consumers dedupe on `Event.event_id`. Stream ids (`Event.id`) are ordered
within a stream and serve as SSE event ids for clients that resume with Last-Event-ID.

Relays and consumers outlive outages of Redis and of the database: they log once, retry with
a capped backoff and resume where they were when the servers are back (a consumer recreates
its groups if Redis came back without them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import after_commit, session_scope, utcnow
from shared.errors import ServiceUnavailable
from shared.events.models import OutboxEvent

logger = logging.getLogger("llmnet.events")

STREAM_PREFIX = "llmnet:events:"
# Retry delays while Redis or the database is away: first, and the most between attempts.
RETRY_DELAY_SECONDS = 0.5
MAX_RETRY_DELAY_SECONDS = 5.0
# Relays in this process; a commit that wrote events wakes them instead of waiting a poll.
_relays: weakref.WeakSet[EventRelay] = weakref.WeakSet()


def _cancelled() -> bool:
    """Whether this task is being cancelled. On Python 3.11 the asyncio.timeout redis-py
    wraps reads in can swallow a cancel that lands as it expires (the task stays
    `cancelling` but runs on), and redis-py may report a cancelled read as a ConnectionError;
    loops check this instead of trusting CancelledError to arrive."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Outage:
    """Capped exponential backoff, and logging once per outage rather than once per attempt."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._delay = RETRY_DELAY_SECONDS
        self._failing = False

    def failed(self, exc: Exception) -> float:
        """Log the failure (a traceback only for unexpected ones); the seconds to wait."""
        expected = isinstance(exc, RedisError | ServiceUnavailable)
        if not self._failing:
            if expected:
                logger.warning("%s: %s; retrying until it is back", self._what, exc)
            else:
                logger.exception("%s failed; retrying", self._what)
        self._failing = True
        delay = self._delay
        self._delay = min(self._delay * 2, MAX_RETRY_DELAY_SECONDS)
        return delay

    def succeeded(self) -> None:
        if self._failing:
            logger.info("%s: resumed", self._what)
        self._failing = False
        self._delay = RETRY_DELAY_SECONDS


def stream_for(event_type: str) -> str:
    """Events of one domain share a stream: `post.created` and `post.liked` go to `...:post`."""
    return STREAM_PREFIX + event_type.split(".", 1)[0]


async def _wake_relays() -> None:
    for relay in list(_relays):
        relay.wake()


def record_event(
    session: AsyncSession, event_type: str, payload: dict[str, Any], *, source: str
) -> OutboxEvent:
    """Add an event to the outbox; it is published only if the surrounding transaction commits."""
    event = OutboxEvent(type=event_type, payload=payload, source=source)
    session.add(event)
    after_commit(session, _wake_relays)
    return event


class EventRelay:
    """Moves committed outbox rows to Redis Streams, in id order, until stopped.

    Several relays (one per service process) may run at once. They take turns (a transaction
    advisory lock): with SKIP LOCKED alone, one relay could publish a row while another was
    still publishing the row before it, and a reader of two quick changes would end on the
    older one. While Redis is away rows stay unpublished and are retried every poll.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        *,
        poll_interval: float = 1.0,
        batch_size: int = 200,
        stream_maxlen: int = 100_000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._redis = redis
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._stream_maxlen = stream_maxlen
        self._wakeup = asyncio.Event()
        _relays.add(self)

    def wake(self) -> None:
        self._wakeup.set()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many events went out."""
        async with session_scope(self._sessionmaker) as session:
            await session.execute(
                select(func.pg_advisory_xact_lock(func.hashtextextended("llmnet.event_relay", 0)))
            )
            rows = (
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                stream_id = await self._redis.xadd(
                    stream_for(row.type),
                    {
                        "type": row.type,
                        "event_id": str(row.event_id),
                        "source": row.source,
                        "occurred_at": row.created_at.isoformat(),
                        "payload": json.dumps(row.payload),
                    },
                    maxlen=self._stream_maxlen,
                    approximate=True,
                )
                row.stream_id = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
                row.published_at = utcnow()
            return len(rows)

    async def run(self) -> None:
        outage = _Outage("event relay")
        while not _cancelled():
            self._wakeup.clear()
            try:
                published = await self.publish_pending()
            except Exception as exc:
                if _cancelled():
                    raise asyncio.CancelledError from exc
                # Rows stay unpublished; a commit's wake-up does not cut the backoff short.
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.succeeded()
            if published == self._batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)
        raise asyncio.CancelledError


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    stream: str
    type: str
    event_id: str
    source: str
    occurred_at: str
    payload: dict[str, Any]

    @classmethod
    def from_fields(cls, stream: str, stream_id: str, fields: dict[str, str]) -> Event:
        return cls(
            id=stream_id,
            stream=stream,
            type=fields["type"],
            event_id=fields["event_id"],
            source=fields["source"],
            occurred_at=fields["occurred_at"],
            payload=json.loads(fields["payload"]),
        )


Handler = Callable[[Event], Awaitable[None]]


class EventConsumer:
    """Reads streams as a member of a consumer group and acks each event once handled.

    Events a crashed member left unacknowledged are claimed again after `claim_idle_ms`.
    `redis` must be created with decode_responses=True. Stop it with `stop()` (it finishes
    its current read, within `block_ms`): cancelling a task blocked in a Redis read is not
    reliable on Python 3.11 (see `_cancelled`).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        group: str,
        consumer: str,
        event_types: Sequence[str],
        handler: Handler,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
    ) -> None:
        self._redis = redis
        self._group = group
        self._consumer = consumer
        self._streams = sorted({stream_for(t) for t in event_types})
        self._types = set(event_types)
        self._handler = handler
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._finished = asyncio.Event()
        self._groups_ready = False

    async def ensure_groups(self) -> None:
        for stream in self._streams:
            try:
                await self._redis.xgroup_create(stream, self._group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _handle(self, stream: str, entries: list[tuple[str, dict[str, str]]]) -> None:
        for stream_id, fields in entries:
            if fields is None:  # trimmed away while pending
                await self._redis.xack(stream, self._group, stream_id)
                continue
            event = Event.from_fields(stream, stream_id, fields)
            if event.type in self._types:
                try:
                    await self._handler(event)
                except ServiceUnavailable as exc:
                    # The database is away: left pending like any failure, without a traceback.
                    logger.warning("handler for %s deferred on %s: %s", event.type, event.id, exc)
                    continue
                except Exception:
                    # Left pending: claimed again after claim_idle_ms, so nothing is lost.
                    logger.exception("handler for %s failed on %s", event.type, event.id)
                    continue
            await self._redis.xack(stream, self._group, stream_id)

    async def consume_once(self) -> None:
        for stream in self._streams:
            claimed = await self._redis.xautoclaim(
                stream, self._group, self._consumer, self._claim_idle_ms, "0-0", count=100
            )
            await self._handle(stream, claimed[1])
        response = await self._redis.xreadgroup(
            self._group,
            self._consumer,
            dict.fromkeys(self._streams, ">"),
            count=100,
            block=self._block_ms,
        )
        for stream, entries in response or []:
            await self._handle(stream, entries)

    async def run(self) -> None:
        """Consume until stopped, through Redis outages (groups are created, and recreated if
        Redis came back without them, before reading)."""
        outage = _Outage(f"event consumer {self._group}")
        try:
            while not (self._stopping or _cancelled()):
                try:
                    if not self._groups_ready:
                        await self.ensure_groups()
                        self._groups_ready = True
                    await self.consume_once()
                except Exception as exc:
                    if _cancelled():
                        raise asyncio.CancelledError from exc
                    if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                        self._groups_ready = False  # Redis lost its data (restarted empty)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop_requested.wait(), outage.failed(exc))
                else:
                    outage.succeeded()
        finally:
            self._finished.set()

    async def stop(self) -> None:
        """Ask the loop to end after its current read, and wait (a bounded time) until it has."""
        self._stopping = True
        self._stop_requested.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finished.wait(), self._block_ms / 1000 + 5)
