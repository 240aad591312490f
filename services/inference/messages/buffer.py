"""The Redis side of an answer: its events, the lease of the process generating it, its stop.

- Events go into a Redis Stream per message (`XADD`, expiring after the stream TTL setting):
  `start` (the assistant message as it begins), `delta` (`{"text": ...}`), then one `done`
  (the final message). A stream id is the SSE event id, so `Last-Event-ID` resumes with
  `XREAD` exactly after the last event a client saw, from any replica.
- The generating task holds a lease (a key holding its token, renewed every third of its TTL).
  Every event is written by a script that checks the lease first, so once the lease is gone
  (expired, or claimed by the sweeper) the old owner can add nothing: what the stream holds
  when the sweeper claims it is the whole answer, and nothing is lost or added after.
- Stop reaches the owner on whichever replica it runs: it is announced on one stream of stops
  that each process reads with a single blocking `XREAD` (`StopSignals`), not a blocking
  command per answer, and left on a list of the answer's that every lease renewal checks (a
  stop sent before its answer's watcher began still arrives, at the next renewal).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from shared.errors import BadRequest
from shared.sse import is_stream_id

# Below the Redis client's socket timeout (5 s): a blocking read must answer before it.
BLOCK_MS = 2000

_PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local id = redis.call('XADD', KEYS[2], '*', 'event', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return id
"""
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


STOPS_KEY = "llmnet:inference:stops"  # every stop, for the process that runs its answer
_STOPS_KEPT = 10_000
_STOPS_LOOKBACK_MS = 60_000  # covers clock skew between this host and Redis's
_RETRY_SECONDS = 1.0

logger = logging.getLogger("llmnet.inference.messages")


class InvalidLastEventId(BadRequest):
    code = "invalid_last_event_id"


def events_key(message_id: uuid.UUID) -> str:
    return f"llmnet:inference:message:{message_id}:events"


def lease_key(message_id: uuid.UUID) -> str:
    return f"llmnet:inference:message:{message_id}:owner"


def stop_key(message_id: uuid.UUID) -> str:
    return f"llmnet:inference:message:{message_id}:stop"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    id: str  # the Redis stream id
    event: str  # start, delta, done
    data: str  # JSON


def check_last_event_id(value: str | None) -> str:
    """Where to read from: after `Last-Event-ID`, or from the start ("0")."""
    if value is None or value == "":
        return "0"
    if not is_stream_id(value):
        raise InvalidLastEventId(
            "Last-Event-ID must be the id of an event of this stream ('<ms>-<seq>'); send "
            "none to start from the beginning."
        )
    return value


class _PublishBatch:
    """Every answer's events published in one turn of the event loop go to Redis together, in
    one pipeline: under load each decoding step yields a delta for every answer, and one round
    trip for all of them costs the process far less than one each."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._calls: list[tuple[list[str], list[str], asyncio.Future[Any]]] = []

    def publish(self, keys: list[str], args: list[str]) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if not self._calls:
            # Sent once the tasks that are ready now have added theirs.
            asyncio.get_running_loop().call_soon(self._send)
        self._calls.append((keys, args, future))
        return future

    def _send(self) -> None:
        calls, self._calls = self._calls, []
        task = asyncio.ensure_future(self._execute(calls))
        _SENDING.add(task)
        task.add_done_callback(_SENDING.discard)

    async def _execute(self, calls: list[tuple[list[str], list[str], asyncio.Future[Any]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args, _ in calls:
                    # EVAL, not a registered script: a pipeline asks SCRIPT EXISTS before every
                    # send of one, a second round trip per batch.
                    pipe.eval(_PUBLISH, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for _, _, future in calls:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), result in zip(calls, results, strict=True):
            if future.done():  # its publisher was cancelled
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


_SENDING: set[asyncio.Future[None]] = set()  # strong references to pipelines in flight
_BATCHES: weakref.WeakKeyDictionary[Redis, _PublishBatch] = weakref.WeakKeyDictionary()


def _batch_for(redis: Redis) -> _PublishBatch:
    batch = _BATCHES.get(redis)
    if batch is None:
        batch = _BATCHES[redis] = _PublishBatch(redis)
    return batch


class Renewal(enum.IntEnum):
    LOST = 0
    KEPT = 1
    STOPPED = 2  # kept, and a stop is waiting


class Lease:
    """The right to write an answer's events, held by one task (or the sweeper).

    Readers in the same process may also `listen`: each event it writes is handed to them as
    soon as Redis has taken it (with its stream id), so the request that asked for the answer
    streams it without a read from Redis per event. They fall back to `follow` from the last id
    they got if the lease ends first (lost to the sweeper, or the process stops).
    """

    def __init__(self, redis: Redis, message_id: uuid.UUID, ttl: int, owner: str) -> None:
        self.redis = redis
        self.message_id = message_id
        self.ttl = ttl
        self.token = f"{owner}:{uuid.uuid4().hex}"
        self.key = lease_key(message_id)
        self._listeners: set[asyncio.Queue[BufferedEvent | None]] = set()

    def listen(self) -> asyncio.Queue[BufferedEvent | None]:
        """The events written from now on; None after the last one this lease will write."""
        queue: asyncio.Queue[BufferedEvent | None] = asyncio.Queue()
        self._listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[BufferedEvent | None]) -> None:
        self._listeners.discard(queue)

    def end_listening(self) -> None:
        for queue in self._listeners:
            queue.put_nowait(None)

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it."""
        return bool(await self.redis.set(self.key, self.token, nx=True, ex=self.ttl))

    async def renew(self) -> Renewal:
        """Extend it, unless it is not ours any more (expired, or claimed); and say whether a
        stop is waiting."""
        keys = [self.key, stop_key(self.message_id)]
        result = await self.redis.eval(_RENEW, len(keys), *keys, self.token, str(self.ttl))  # type: ignore[misc]
        return Renewal(int(result))

    async def release(self) -> None:
        await self.redis.eval(_RELEASE, 1, self.key, self.token)  # type: ignore[misc]

    async def publish(self, event: str, data: str, stream_ttl: int) -> str | None:
        """Append an event; None when the lease is lost (nothing was written)."""
        keys = [self.key, events_key(self.message_id)]
        args = [self.token, event, data, str(stream_ttl)]
        result = await _batch_for(self.redis).publish(keys, args)
        if result is None:
            return None
        written = BufferedEvent(_text(result), event, data)
        for queue in self._listeners:
            queue.put_nowait(written)
        return written.id


async def lease_alive(redis: Redis, message_id: uuid.UUID) -> bool:
    return bool(await redis.exists(lease_key(message_id)))


async def signal_stop(redis: Redis, message_id: uuid.UUID, ttl: int) -> None:
    key = stop_key(message_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.rpush(key, "stop")
        pipe.expire(key, ttl)
        pipe.xadd(STOPS_KEY, {"message_id": str(message_id)}, maxlen=_STOPS_KEPT, approximate=True)
        await pipe.execute()


class StopSignals:
    """The stops of the answers this process runs, read from the stops stream by one task for
    the whole process: a blocking command per answer would hold a connection each, and
    cancelling one when its answer ends drops the connection (a reconnect on every turn)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._waiting: dict[uuid.UUID, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, message_id: uuid.UUID) -> asyncio.Event:
        """Set when a stop for `message_id` arrives; `unwatch` once the answer has ended."""
        if self._task is None:
            # From a little before now (stream ids are milliseconds), not from wherever the
            # stream ends once the reader first gets to ask: a stop sent in between is read.
            # Older stops only ever wake the answers they name.
            start = f"{int(time.time() * 1000) - _STOPS_LOOKBACK_MS}-0"
            self._task = asyncio.create_task(self._read(start), name="answer-stops")
        event = self._waiting[message_id] = asyncio.Event()
        return event

    def unwatch(self, message_id: uuid.UUID) -> None:
        self._waiting.pop(message_id, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _read(self, after: str) -> None:
        while True:
            try:
                answer = await self._redis.xread({STOPS_KEY: after}, block=BLOCK_MS, count=256)
            except Exception:
                # The position is kept: nothing is skipped once Redis answers again (and the
                # renewals see the stop lists meanwhile).
                logger.warning("answer stops: Redis read failed, retrying", exc_info=True)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    after = _text(entry_id)
                    with contextlib.suppress(KeyError, ValueError):
                        self._waiting[uuid.UUID(_text(fields["message_id"]))].set()


async def buffered(redis: Redis, message_id: uuid.UUID) -> list[BufferedEvent]:
    """Every event the stream holds now (empty once it expired)."""
    entries = await redis.xrange(events_key(message_id))
    return [_event(entry_id, fields) for entry_id, fields in entries]


def _event(entry_id: Any, fields: dict[Any, Any]) -> BufferedEvent:
    values = {_text(k): _text(v) for k, v in fields.items()}
    return BufferedEvent(_text(entry_id), values.get("event", ""), values.get("data", "{}"))


def buffered_text(events: list[BufferedEvent]) -> str:
    return "".join(json.loads(e.data).get("text", "") for e in events if e.event == "delta")


def buffered_completion_tokens(events: list[BufferedEvent]) -> int:
    """The tokens generated by the last delta (each carries the running count)."""
    for event in reversed(events):
        if event.event == "delta":
            return int(json.loads(event.data).get("completion_tokens", 0))
    return 0


async def follow(
    redis: Redis, message_id: uuid.UUID, after: str, *, idle_timeout: float
) -> AsyncIterator[BufferedEvent]:
    """The events after stream id `after`, live, until `done`. Ends early when there is nothing
    more to wait for: the stream is gone (expired) and nobody holds the lease, or nothing came
    for `idle_timeout` seconds without a lease (its owner died and no sweeper ended it)."""
    key = events_key(message_id)
    if not await redis.exists(key) and not await lease_alive(redis, message_id):
        return
    idle = 0.0
    while True:
        answer = await redis.xread({key: after}, block=BLOCK_MS, count=256)
        if not answer:
            if await lease_alive(redis, message_id):
                idle = 0.0
                continue
            idle += BLOCK_MS / 1000
            if idle >= idle_timeout or not await redis.exists(key):
                return
            continue
        idle = 0.0
        for _, entries in answer:
            for entry_id, fields in entries:
                event = _event(entry_id, fields)
                after = event.id
                yield event
                if event.event == "done":
                    return
