"""One reader of the post and follow-changes streams per process, shared by every live feed.

Each open live feed used to run its own blocking XREAD on both streams: with 200 clients a
published post was read, sent and parsed 200 times, and each feed held a Redis connection. The
hub reads each entry once and hands it to every subscriber's queue; a follow change goes
straight to the subscribers of the person whose follows changed.

A subscriber resumes from a stream id without loss or duplicates: it subscribes first, then
reads what it missed with XRANGE, then takes the hub's entries, skipping those at or before the
last id it yielded. One that falls too far behind (a stalled client) is dropped by the hub and
starts over from its last id the same way, so a slow reader costs memory only up to a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from services.feed.follows import changes

logger = logging.getLogger(__name__)

Entry = tuple[str, dict[str, str]]

_BLOCK_MS = 2000  # below the Redis client's socket timeout
_READ_COUNT = 500
_MAX_QUEUED_BATCHES = 1000  # past this a subscriber is dropped and catches up from Redis
_RETRY_SECONDS = 1.0


def _key(stream_id: str) -> tuple[int, int]:
    millis, _, seq = stream_id.partition("-")
    return int(millis), int(seq or 0)


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(stream_id: str | bytes, fields: dict[str | bytes, str | bytes]) -> Entry:
    return text(stream_id), {text(k): text(v) for k, v in fields.items()}


@dataclass(eq=False)
class _Subscriber:
    user_id: str
    on_follow_change: Callable[[], None]
    queue: asyncio.Queue[list[Entry]] = field(default_factory=asyncio.Queue)
    lagged: bool = False


class _Hub:
    def __init__(self, redis: Redis, stream: str) -> None:
        self._redis = redis
        self._stream = stream
        self._subscribers: set[_Subscriber] = set()
        self._by_user: defaultdict[str, set[_Subscriber]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def subscribe(self, user_id: str, on_follow_change: Callable[[], None]) -> _Subscriber:
        """Register; returns once the hub reads every entry added from now on."""
        subscriber = _Subscriber(user_id, on_follow_change)
        self._subscribers.add(subscriber)
        self._by_user[user_id].add(subscriber)
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="feed-live-hub")
        try:
            await self._ready.wait()
        except BaseException:
            self.unsubscribe(subscriber)  # the client went away while the hub was starting
            raise
        return subscriber

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        self._subscribers.discard(subscriber)
        users = self._by_user.get(subscriber.user_id)
        if users is not None:
            users.discard(subscriber)
            if not users:
                del self._by_user[subscriber.user_id]
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _newest(self, stream: str) -> str:
        newest = await self._redis.xrevrange(stream, count=1)
        return text(newest[0][0]) if newest else "0-0"

    async def _run(self) -> None:
        while True:
            try:
                positions: dict[Any, Any] = {
                    self._stream: await self._newest(self._stream),
                    changes.FOLLOW_CHANGES_STREAM: await self._newest(
                        changes.FOLLOW_CHANGES_STREAM
                    ),
                }
                break
            except Exception:
                logger.warning("live feed hub: Redis unavailable, retrying", exc_info=True)
                await asyncio.sleep(_RETRY_SECONDS)
        self._ready.set()
        while self._subscribers:
            try:
                response = await self._redis.xread(positions, count=_READ_COUNT, block=_BLOCK_MS)
            except Exception:
                # Positions are kept: once Redis answers again nothing is skipped.
                logger.warning("live feed hub: read failed, retrying", exc_info=True)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            by_stream = {text(s): [_entry(i, f) for i, f in e] for s, e in response or []}
            # Follow changes first: a post read with its viewer's new follow is judged by it.
            for stream_id, fields in by_stream.get(changes.FOLLOW_CHANGES_STREAM, []):
                positions[changes.FOLLOW_CHANGES_STREAM] = stream_id
                for subscriber in self._by_user.get(changes.changed_user(fields), ()):
                    subscriber.on_follow_change()
            batch = by_stream.get(self._stream)
            if batch:
                positions[self._stream] = batch[-1][0]
                self._deliver(batch)

    def _deliver(self, batch: list[Entry]) -> None:
        for subscriber in list(self._subscribers):
            if subscriber.queue.qsize() >= _MAX_QUEUED_BATCHES:
                subscriber.lagged = True
                self.unsubscribe(subscriber)
            else:
                subscriber.queue.put_nowait(batch)


_hubs: weakref.WeakKeyDictionary[Redis, dict[str, _Hub]] = weakref.WeakKeyDictionary()


def _hub(redis: Redis, stream: str) -> _Hub:
    per_stream = _hubs.setdefault(redis, {})
    hub = per_stream.get(stream)
    if hub is None:
        hub = per_stream[stream] = _Hub(redis, stream)
    return hub


class Subscription:
    """`async with Subscription(...) as sub:` then `async for ... in sub.entries_after(id)`.
    Once entered, every entry added from then on reaches it, and `on_follow_change` runs when
    `user_id`'s follows change: state read inside the block misses no later change."""

    def __init__(
        self, redis: Redis, stream: str, user_id: str, on_follow_change: Callable[[], None]
    ) -> None:
        self._redis = redis
        self._stream = stream
        self._hub = _hub(redis, stream)
        self._user_id = user_id
        self._on_follow_change = on_follow_change
        self._subscriber: _Subscriber | None = None

    async def __aenter__(self) -> Subscription:
        self._subscriber = await self._hub.subscribe(self._user_id, self._on_follow_change)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._subscriber is not None:
            self._hub.unsubscribe(self._subscriber)
            self._subscriber = None

    async def entries_after(self, after: str) -> AsyncIterator[Entry]:
        """Entries of the stream after id `after`, in order, each once, forever."""
        last = _key(after)
        while True:
            subscriber = self._subscriber
            if subscriber is None:  # dropped for lagging: subscribe again, then catch up
                logger.info("live feed of %s fell behind; catching up", self._user_id)
                await self.__aenter__()
                subscriber = self._subscriber
                assert subscriber is not None
            while True:  # what was added before the hub's entries reach us
                backlog = await self._redis.xrange(self._stream, min=f"({after}", count=_READ_COUNT)
                for raw_id, raw_fields in backlog:
                    stream_id, fields = _entry(raw_id, raw_fields)
                    after, last = stream_id, _key(stream_id)
                    yield stream_id, fields
                if len(backlog) < _READ_COUNT:
                    break
            while not (subscriber.lagged and subscriber.queue.empty()):
                for stream_id, fields in await subscriber.queue.get():
                    key = _key(stream_id)
                    if key > last:
                        after, last = stream_id, key
                        yield stream_id, fields
            self._subscriber = None


async def close_all() -> None:
    """Stop every hub task (tests and shutdown)."""
    for per_stream in list(_hubs.values()):
        for hub in per_stream.values():
            task = hub._task
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
