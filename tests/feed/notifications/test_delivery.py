"""Delivery: the live stream (SSE, resumable with Last-Event-ID), and exactly one notification
per event and recipient when the consumer dies mid-batch and another takes over."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from services.feed import background
from services.feed.models import Notification
from services.feed.notifications.live import stream_key
from shared.db import session_scope
from tests.factories import user_session
from tests.feed.conftest import publish
from tests.feed.notifications.conftest import notifications_of, publish_outbox, read_events


async def test_the_stream_delivers_a_new_notification_live(
    client, worker_ctx, notifier, owner, llama
):
    post = await publish(client, worker_ctx, owner, llama)
    fan = await user_session(client)

    async def like() -> None:
        await asyncio.sleep(0.3)
        await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
        await notifier.deliver()

    events = await read_events(client, owner, 1, after_connect=like)
    assert len(events) == 1
    assert events[0][1]["kind"] == "post_liked"
    assert events[0][1]["actor_username"] == fan.username
    assert events[0][1]["id"] == (await notifications_of(client, owner))[0]["id"]


async def test_the_stream_resumes_after_last_event_id_without_loss_or_duplicates(
    client, worker_ctx, notifier, owner, llama
):
    post = await publish(client, worker_ctx, owner, llama)
    fans = [await user_session(client) for _ in range(4)]

    async def like(fan) -> None:
        await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
        await notifier.deliver()

    async def first_like() -> None:
        await asyncio.sleep(0.3)
        await like(fans[0])

    first = await read_events(client, owner, 1, after_connect=first_like)
    # Disconnected: three more notifications are made meanwhile.
    for fan in fans[1:]:
        await like(fan)
    resumed = await read_events(client, owner, 3, last_event_id=first[0][0])

    assert [e[1]["actor_username"] for e in first + resumed] == [f.username for f in fans]
    assert len({e[0] for e in first + resumed}) == 4


async def test_a_bad_last_event_id_is_refused(client, owner):
    response = await client.get(
        "/api/v1/notifications/stream", headers={**owner.headers, "Last-Event-ID": "yesterday"}
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "Last-Event-ID"


class Killed(BaseException):
    """The worker process dying: nothing after it runs (no ack, no error handling)."""


async def test_a_consumer_killed_mid_batch_makes_each_notification_once(
    client, platform, worker_ctx, notifier, owner, llama
):
    post = await publish(client, worker_ctx, owner, llama)
    fans = [await user_session(client) for _ in range(5)]
    for fan in fans:
        response = await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
        assert response.status_code == 200
    await publish_outbox(platform)

    doomed = notifier.consumer("doomed")
    await doomed.ensure_groups()
    handle = doomed._handler
    handled = 0

    async def dies_after_the_third_commit(event) -> None:
        nonlocal handled
        await handle(event)
        handled += 1
        if handled == 3:
            raise Killed  # committed and appended, never acknowledged

    doomed._handler = dies_after_the_third_commit
    with pytest.raises(Killed):
        await doomed.consume_once()

    # A restarted member claims what the dead one left pending, then reads the rest.
    successor = notifier.consumer("successor", claim_idle_ms=0)
    await successor.consume_once()
    await successor.consume_once()

    async with session_scope(platform.sessionmaker) as session:
        count = await session.scalar(select(func.count()).select_from(Notification))
    assert count == 5
    items = await notifications_of(client, owner)
    assert sorted(n["actor_username"] for n in items) == sorted(f.username for f in fans)
    assert await platform.redis.xlen(stream_key(owner.id)) == 5
    pending = await platform.redis.xpending("llmnet:events:post", "feed.notifications")
    assert pending["pending"] == 0


async def test_the_workers_consumer_notifies_as_events_arrive(client, worker_ctx, owner, llama):
    post = await publish(client, worker_ctx, owner, llama)
    feed = worker_ctx["feed"]
    ctx = {"feed": feed, "settings": feed.settings, "sessionmaker": feed.sessionmaker}
    await background.start(ctx)
    try:
        fan = await user_session(client)
        await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
        items: list = []
        for _ in range(200):  # the worker's consumer blocks at most a second per read
            if items := await notifications_of(client, owner):
                break
            await asyncio.sleep(0.1)
    finally:
        await background.stop(ctx)
    assert [n["kind"] for n in items] == ["post_liked"]
