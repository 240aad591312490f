"""Notifications through the gateway: made from domain events by the feed worker's consumer,
once per event and recipient, for every kind; never about one's own doings nor about models the
recipient may not use; muted kinds; read state and counts."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from services.feed.models import Notification
from shared.db import session_scope
from shared.events import record_event
from tests.factories import user_session
from tests.feed.conftest import publish, run_jobs
from tests.feed.notifications.conftest import notifications_of
from tests.inference.conftest import ready_model


async def record(platform, event_type, payload, source="models_hub"):
    async with session_scope(platform.sessionmaker) as session:
        record_event(session, event_type, payload, source=source)


async def test_a_like_notifies_the_posts_owner_once(client, worker_ctx, notifier, owner, llama):
    post = await publish(client, worker_ctx, owner, llama)
    fan = await user_session(client)
    for _ in range(3):
        response = await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
        assert response.status_code == 200
    await notifier.deliver()
    await notifier.deliver()

    items = await notifications_of(client, owner)
    assert [n["kind"] for n in items] == ["post_liked"]
    assert items[0]["actor_username"] == fan.username
    assert items[0]["actor_id"] == fan.id
    assert items[0]["post_id"] == post["id"]
    assert items[0]["model_id"] == llama["id"]
    assert items[0]["read"] is False
    assert items[0]["summary"].startswith(f"@{fan.username} liked {llama['ref']}'s post")
    assert await notifications_of(client, fan) == []


async def test_liking_ones_own_post_notifies_nobody(client, worker_ctx, notifier, owner, llama):
    post = await publish(client, worker_ctx, owner, llama)
    response = await client.post(f"/api/v1/posts/{post['id']}/like", headers=owner.headers)
    assert response.status_code == 200
    await notifier.deliver()
    assert await notifications_of(client, owner) == []


async def test_a_follow_notifies_the_followed_person(client, notifier, owner):
    fan = await user_session(client)
    response = await client.post(f"/api/v1/users/{owner.username}/follow", headers=fan.headers)
    assert response.status_code == 200
    await notifier.deliver()

    items = await notifications_of(client, owner)
    assert [(n["kind"], n["actor_username"]) for n in items] == [("user_followed", fan.username)]
    assert items[0]["summary"] == f"@{fan.username} followed you."


async def test_a_model_follow_notifies_the_models_owner(client, notifier, owner, llama):
    fan = await user_session(client)
    response = await client.post(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
    assert response.status_code == 200
    await notifier.deliver()

    items = await notifications_of(client, owner)
    assert [(n["kind"], n["model_id"]) for n in items] == [("model_followed", llama["id"])]
    assert items[0]["summary"] == f"@{fan.username} followed {llama['ref']}."


async def test_version_outcomes_notify_the_models_owner(client, platform, notifier, owner, llama):
    base = {"model_id": llama["id"], "owner_id": owner.id, "ref": llama["ref"]}
    await record(
        platform,
        "model.version.validated",
        {**base, "version_id": llama["version_id"], "number": 1, "error": None},
    )
    await record(
        platform,
        "model.version.failed",
        {**base, "version_id": str(uuid.uuid4()), "number": 2, "error": "no weights found"},
    )
    await notifier.deliver()

    items = await notifications_of(client, owner)
    assert [n["kind"] for n in items] == ["version_failed", "version_validated"]
    assert items[0]["summary"] == f"Version 2 of {llama['ref']} failed validation: no weights found"
    assert items[0]["payload"]["error"] == "no weights found"
    assert (
        items[1]["summary"] == f"Version 1 of {llama['ref']} passed validation and is ready to use."
    )


async def test_finetune_outcomes_notify_the_jobs_owner(client, platform, notifier, owner, llama):
    base = {"model_id": llama["id"], "owner_id": owner.id}
    await record(
        platform,
        "finetune.completed",
        {**base, "job_id": str(uuid.uuid4()), "version_id": llama["version_id"]},
    )
    await record(
        platform, "finetune.failed", {**base, "job_id": str(uuid.uuid4()), "error": "out of memory"}
    )
    await notifier.deliver()

    items = await notifications_of(client, owner)
    assert [n["kind"] for n in items] == ["finetune_failed", "finetune_completed"]
    assert items[0]["summary"] == f"Your fine-tune of {llama['ref']} failed: out of memory"
    assert items[1]["summary"] == f"Your fine-tune of {llama['ref']} finished."
    assert items[1]["payload"]["version_id"] == llama["version_id"]


async def test_someone_elses_post_by_your_model_notifies_you(
    client, worker_ctx, notifier, owner, llama
):
    fan = await user_session(client)
    await publish(client, worker_ctx, fan, llama)
    await notifier.deliver()

    items = await notifications_of(client, owner)
    assert [(n["kind"], n["actor_id"]) for n in items] == [("model_posted", fan.id)]
    assert items[0]["summary"].startswith(f"{llama['ref']} published a post")
    assert await notifications_of(client, fan) == []


async def test_a_reply_notifies_the_parents_owner(client, worker_ctx, notifier, owner, llama):
    post = await publish(client, worker_ctx, owner, llama)
    fan = await user_session(client)
    response = await client.post(
        f"/api/v1/posts/{post['id']}/replies", json={"text": "Nice one."}, headers=fan.headers
    )
    assert response.status_code == 202
    await notifier.deliver()

    items = await notifications_of(client, owner)
    assert [(n["kind"], n["post_id"]) for n in items] == [("post_replied", response.json()["id"])]
    assert items[0]["summary"] == f"@{fan.username} replied to your post: Nice one."
    assert items[0]["payload"]["parent_id"] == post["id"]


async def test_a_private_models_reply_never_notifies_outsiders(
    client, platform, worker_ctx, notifier, owner, llama, tiny_llama_dir
):
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="secret", visibility="private")
    post = await publish(client, worker_ctx, owner, llama)
    outsider = await user_session(client)
    reply = await client.post(
        f"/api/v1/posts/{post['id']}/replies", json={"text": "Hello."}, headers=outsider.headers
    )
    assert reply.status_code == 202
    answer = await client.post(
        f"/api/v1/posts/{reply.json()['id']}/replies",
        json={"model": secret["ref"], "max_tokens": 4},
        headers=owner.headers,
    )
    assert answer.status_code == 202
    assert await run_jobs(worker_ctx) == ["published"]
    await notifier.deliver()

    assert await notifications_of(client, outsider) == []
    # The owner heard of the outsider's public reply, as usual.
    assert [n["kind"] for n in await notifications_of(client, owner)] == ["post_replied"]


async def test_muted_kinds_are_not_made(client, worker_ctx, notifier, owner, llama):
    post = await publish(client, worker_ctx, owner, llama)
    muted = await client.put(
        "/api/v1/notifications/preferences", json={"muted": ["post_liked"]}, headers=owner.headers
    )
    assert muted.status_code == 200
    assert muted.json()["muted"] == ["post_liked"]
    first = await user_session(client)
    await client.post(f"/api/v1/posts/{post['id']}/like", headers=first.headers)
    await notifier.deliver()
    assert await notifications_of(client, owner) == []

    unmuted = await client.put(
        "/api/v1/notifications/preferences", json={"muted": []}, headers=owner.headers
    )
    assert unmuted.json()["muted"] == []
    second = await user_session(client)
    await client.post(f"/api/v1/posts/{post['id']}/like", headers=second.headers)
    await notifier.deliver()
    items = await notifications_of(client, owner)
    assert [n["actor_username"] for n in items] == [second.username]


async def test_preferences_list_every_kind_and_refuse_unknown_ones(client, owner):
    response = await client.get("/api/v1/notifications/preferences", headers=owner.headers)
    assert response.status_code == 200
    assert response.json()["muted"] == []
    assert "post_liked" in response.json()["kinds"]
    bad = await client.put(
        "/api/v1/notifications/preferences", json={"muted": ["spam"]}, headers=owner.headers
    )
    assert bad.status_code == 422
    assert "muted" in bad.text


async def test_read_state_and_unread_counts(client, worker_ctx, notifier, owner, llama):
    post = await publish(client, worker_ctx, owner, llama)
    fans = [await user_session(client) for _ in range(3)]
    for fan in fans:
        await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
    await notifier.deliver()
    count = await client.get("/api/v1/notifications/unread-count", headers=owner.headers)
    assert count.status_code == 200
    assert count.json() == {"unread": 3}

    newest = (await notifications_of(client, owner))[0]
    marked = await client.post(f"/api/v1/notifications/{newest['id']}/read", headers=owner.headers)
    assert marked.status_code == 200
    assert marked.json()["read"] is True
    unread = await notifications_of(client, owner, unread="true")
    assert [n["id"] for n in unread] == [
        n["id"] for n in (await notifications_of(client, owner))[1:]
    ]
    assert (
        await client.get("/api/v1/notifications/unread-count", headers=owner.headers)
    ).json() == {"unread": 2}

    everything = await client.post("/api/v1/notifications/read-all", headers=owner.headers)
    assert everything.status_code == 200
    assert everything.json() == {"marked": 2}
    assert (
        await client.get("/api/v1/notifications/unread-count", headers=owner.headers)
    ).json() == {"unread": 0}


async def test_another_persons_notification_is_not_found(
    client, worker_ctx, notifier, owner, llama
):
    post = await publish(client, worker_ctx, owner, llama)
    fan = await user_session(client)
    await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
    await notifier.deliver()
    notification = (await notifications_of(client, owner))[0]

    response = await client.post(
        f"/api/v1/notifications/{notification['id']}/read", headers=fan.headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "notification_not_found"
    assert (await client.get("/api/v1/notifications")).status_code == 401


async def test_the_list_pages_newest_first(client, worker_ctx, notifier, owner, llama):
    post = await publish(client, worker_ctx, owner, llama)
    fans = [await user_session(client) for _ in range(3)]
    for fan in fans:
        await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
    await notifier.deliver()

    first = await client.get("/api/v1/notifications", params={"limit": 2}, headers=owner.headers)
    assert first.status_code == 200
    second = await client.get(
        "/api/v1/notifications",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=owner.headers,
    )
    names = [n["actor_username"] for n in first.json()["items"] + second.json()["items"]]
    assert set(names) == {f.username for f in fans}
    assert len(names) == 3
    assert second.json()["next_cursor"] is None
    bad = await client.get(
        "/api/v1/notifications", params={"cursor": "nope!"}, headers=owner.headers
    )
    assert bad.status_code == 422


async def test_each_event_notifies_each_recipient_once_in_the_database(
    client, platform, worker_ctx, notifier, owner, llama
):
    post = await publish(client, worker_ctx, owner, llama)
    fan = await user_session(client)
    await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
    await notifier.deliver()
    # The same events handled again by a fresh group (as after Redis lost its groups).
    await platform.redis.xgroup_destroy("llmnet:events:post", "feed.notifications")
    await notifier.deliver()
    async with session_scope(platform.sessionmaker) as session:
        count = await session.scalar(select(func.count()).select_from(Notification))
    assert count == 1
