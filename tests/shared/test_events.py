"""Outbox → Redis Streams → consumer groups, including a Redis outage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmnet.launcher.embedded import start_redis
from llmnet.migrations import upgrade_head
from shared.db import create_engine, create_sessionmaker, session_scope
from shared.events import EventConsumer, EventRelay, record_event
from shared.events.models import OutboxEvent
from shared.testing import create_database, drop_database
from tests.conftest import ADMIN_DATABASE_URL, REDIS_URL


@dataclass
class Outbox:
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis


@pytest.fixture(scope="module")
async def outbox_sessionmaker() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    # A database of its own: the platform's services run relays that would race these tests.
    url = await create_database(ADMIN_DATABASE_URL, prefix="llmnet_events")
    await asyncio.to_thread(upgrade_head, url)
    engine = create_engine(url, pool_size=2)
    yield create_sessionmaker(engine)
    await engine.dispose()
    await drop_database(ADMIN_DATABASE_URL, url)


@pytest.fixture
async def outbox(outbox_sessionmaker) -> AsyncIterator[Outbox]:
    async with outbox_sessionmaker() as session, session.begin():
        await session.execute(text("TRUNCATE event_outbox"))
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    await redis.delete("llmnet:events:test")
    yield Outbox(outbox_sessionmaker, redis)
    await redis.aclose()


async def test_events_are_published_only_after_commit(outbox):
    relay = EventRelay(outbox.sessionmaker, outbox.redis)
    try:
        async with session_scope(outbox.sessionmaker) as session:
            record_event(session, "test.rolled_back", {"n": 1}, source="tests")
            raise RuntimeError("abort the transaction")
    except RuntimeError:
        pass
    async with session_scope(outbox.sessionmaker) as session:
        record_event(session, "test.kept", {"n": 2}, source="tests")
    assert await relay.publish_pending() == 1
    entries = await outbox.redis.xrange("llmnet:events:test")
    assert [fields["type"] for _, fields in entries] == ["test.kept"]


async def test_relays_of_several_processes_keep_the_commit_order(outbox):
    """Every service process runs a relay: while one publishes an event, another must not
    publish the next one first (a live feed would end on the older of two counts)."""
    for n in range(30):
        async with session_scope(outbox.sessionmaker) as session:
            record_event(session, "test.step", {"n": n}, source="tests")
    # One process is slower to reach Redis than the other.
    slow = Redis.from_url(REDIS_URL, decode_responses=True)
    xadd = slow.xadd

    async def late_xadd(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.02)
        return await xadd(*args, **kwargs)

    slow.xadd = late_xadd  # type: ignore[method-assign]
    relays = [EventRelay(outbox.sessionmaker, r, batch_size=1) for r in (slow, outbox.redis)]

    async def drain(relay: EventRelay) -> None:
        while await relay.publish_pending():
            pass

    try:
        await asyncio.gather(*(drain(relay) for relay in relays))
    finally:
        await slow.aclose()
    entries = await outbox.redis.xrange("llmnet:events:test")
    assert [json.loads(fields["payload"])["n"] for _, fields in entries] == list(range(30))


async def test_consumer_group_receives_each_event_once_in_order(outbox):
    async with session_scope(outbox.sessionmaker) as session:
        for n in range(5):
            record_event(session, "test.counted", {"n": n}, source="tests")
    await EventRelay(outbox.sessionmaker, outbox.redis).publish_pending()

    seen: list[int] = []

    async def handler(event) -> None:
        seen.append(event.payload["n"])

    consumer = EventConsumer(
        outbox.redis,
        group="tests",
        consumer="c1",
        event_types=["test.counted"],
        handler=handler,
        block_ms=100,
    )
    await consumer.ensure_groups()
    await consumer.consume_once()
    await consumer.consume_once()
    assert seen == [0, 1, 2, 3, 4]
    pending = await outbox.redis.xpending("llmnet:events:test", "tests")
    assert pending["pending"] == 0


async def test_a_failed_handler_leaves_the_event_for_a_retry(outbox):
    async with session_scope(outbox.sessionmaker) as session:
        record_event(session, "test.flaky", {"n": 1}, source="tests")
    await EventRelay(outbox.sessionmaker, outbox.redis).publish_pending()
    calls: list[str] = []

    async def flaky(event) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            raise ValueError("first delivery fails")

    consumer = EventConsumer(
        outbox.redis,
        group="flaky",
        consumer="c1",
        event_types=["test.flaky"],
        handler=flaky,
        block_ms=50,
        claim_idle_ms=0,
    )
    await consumer.ensure_groups()
    await consumer.consume_once()
    await consumer.consume_once()  # claims the unacknowledged event again
    assert len(calls) == 2
    assert calls[0] == calls[1]


async def test_events_survive_a_redis_outage(outbox):
    dead = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    async with session_scope(outbox.sessionmaker) as session:
        record_event(session, "test.durable", {"n": 7}, source="tests")

    down = EventRelay(outbox.sessionmaker, dead, poll_interval=0.05)
    task = asyncio.create_task(down.run())
    await asyncio.sleep(0.3)  # several failed attempts
    task.cancel()
    await dead.aclose()
    async with outbox.sessionmaker() as session:
        row = await session.scalar(select(OutboxEvent))
    assert row.published_at is None

    back = EventRelay(outbox.sessionmaker, Redis.from_url(REDIS_URL), poll_interval=0.05)
    assert await back.publish_pending() == 1
    entries = await outbox.redis.xrange("llmnet:events:test")
    assert [f["payload"] for _, f in entries] == ['{"n": 7}']
    async with outbox.sessionmaker() as session:
        row = await session.scalar(select(OutboxEvent))
    assert row.stream_id == entries[0][0]  # usable as an SSE event id


async def test_a_blocked_consumer_stops_when_cancelled(outbox):
    async def handler(event) -> None:
        raise AssertionError("no events are sent in this test")

    consumer = EventConsumer(
        outbox.redis,
        group="idle",
        consumer="c1",
        event_types=["test.none"],
        handler=handler,
        block_ms=5000,
    )
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.3)  # now blocked in XREADGROUP
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 3)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_for(condition, seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_consumer_outlives_redis_outages_and_lost_groups(outbox, tmp_path):
    """Started before its Redis is up, then Redis restarts without its data (streams and
    groups gone): the consumer carries on and handles what is published afterwards."""
    port = free_port()
    redis = Redis.from_url(f"redis://127.0.0.1:{port}/0", decode_responses=True)
    seen: list[int] = []

    async def handler(event) -> None:
        seen.append(event.payload["n"])

    async def publish(n: int) -> None:
        async with session_scope(outbox.sessionmaker) as session:
            record_event(session, "test.resumed", {"n": n}, source="tests")
        assert await EventRelay(outbox.sessionmaker, redis).publish_pending() == 1

    consumer = EventConsumer(
        redis, group="survivor", consumer="c1", event_types=["test.resumed"], handler=handler
    )
    task = asyncio.create_task(consumer.run())
    server = None
    try:
        await asyncio.sleep(1)  # Redis is not there yet: the consumer keeps retrying
        server = await asyncio.to_thread(start_redis, tmp_path / "first", port=port)
        await publish(1)
        await _wait_for(lambda: seen == [1])

        await asyncio.to_thread(server.stop)
        server = await asyncio.to_thread(start_redis, tmp_path / "empty", port=port)
        await publish(2)
        await _wait_for(lambda: seen == [1, 2])
    finally:
        await consumer.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()
        if server is not None:
            await asyncio.to_thread(server.stop)
