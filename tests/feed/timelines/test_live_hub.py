"""The live hub: one reader per process hands every open live feed each entry exactly once and
in order, catches a feed up from Redis after it fell behind, and passes follow changes only to
the feeds of the person whose follows changed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.feed.follows import changes
from services.feed.timelines import live_hub
from tests.conftest import REDIS_URL


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await live_hub.close_all()
    await client.aclose()


async def _collect(sub: live_hub.Subscription, after: str, count: int) -> list[str]:
    ids: list[str] = []
    async with asyncio.timeout(10):
        async for stream_id, _ in sub.entries_after(after):
            ids.append(stream_id)
            if len(ids) == count:
                return ids
    return ids


async def test_feeds_resume_from_an_id_and_get_every_later_entry_once_in_order(redis):
    stream = f"test:live:{uuid.uuid4()}"
    before = [await redis.xadd(stream, {"n": str(n)}) for n in range(3)]
    first = live_hub.Subscription(redis, stream, "ada", lambda: None)
    second = live_hub.Subscription(redis, stream, "bob", lambda: None)
    async with first, second:
        reading = [
            asyncio.create_task(_collect(first, before[0], 7)),
            asyncio.create_task(_collect(second, "0-0", 8)),
        ]
        later = []
        for n in range(5):
            later.append(await redis.xadd(stream, {"n": str(n + 3)}))
            await asyncio.sleep(0.01)
        got_first, got_second = await asyncio.gather(*reading)
    assert got_first == before[1:] + later
    assert got_second == before + later


async def test_a_feed_that_fell_behind_catches_up_from_redis(redis, monkeypatch):
    monkeypatch.setattr(live_hub, "_MAX_QUEUED_BATCHES", 2)
    stream = f"test:live:{uuid.uuid4()}"
    start = await redis.xadd(stream, {"n": "start"})
    slow = live_hub.Subscription(redis, stream, "ada", lambda: None)
    async with slow:
        # Nobody reads while ten separate batches arrive: the hub drops the feed at the third.
        added = []
        for n in range(10):
            added.append(await redis.xadd(stream, {"n": str(n)}))
            await asyncio.sleep(0.05)
        got = await _collect(slow, start, 10)
    assert got == added


async def test_a_follow_change_reaches_only_that_persons_feeds(redis):
    stream = f"test:live:{uuid.uuid4()}"
    ada, bob = uuid.uuid4(), uuid.uuid4()
    told: list[str] = []
    first = asyncio.Event()

    def tell(name: str) -> None:
        told.append(name)
        first.set()

    ada_feed = live_hub.Subscription(redis, stream, str(ada), lambda: tell("ada"))
    bob_feed = live_hub.Subscription(redis, stream, str(bob), lambda: tell("bob"))
    async with ada_feed, bob_feed:
        await changes.announce(redis, ada)
        await asyncio.wait_for(first.wait(), 5)
        await asyncio.sleep(0.1)  # room for a wrong second call
    assert told == ["ada"]
