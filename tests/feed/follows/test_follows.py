"""Follows of models (through the gateway, owned by the feed) and of people (projected from
accounts' events by the feed's consumer group)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from services.feed.models import PersonFollow
from shared.db import session_scope
from shared.events.models import OutboxEvent
from tests.factories import user_session
from tests.feed.conftest import ready_model
from tests.feed.timelines.helpers import consume


async def test_following_a_model_is_idempotent_and_counted(client, llama):
    fan = await user_session(client)
    path = f"/api/v1/models/{llama['id']}/follow"

    follows = await asyncio.gather(*(client.post(path, headers=fan.headers) for _ in range(5)))
    assert [r.status_code for r in follows] == [200] * 5
    assert all(r.json()["following"] for r in follows)
    state = await client.get(path, headers=fan.headers)
    assert state.status_code == 200
    assert state.json() == {"model_id": llama["id"], "following": True, "followers_count": 1}

    anonymous = await client.get(path)
    assert anonymous.status_code == 200
    assert anonymous.json() == {"model_id": llama["id"], "following": False, "followers_count": 1}

    for _ in range(2):
        unfollow = await client.delete(path, headers=fan.headers)
        assert unfollow.status_code == 200
        assert unfollow.json() == {
            "model_id": llama["id"],
            "following": False,
            "followers_count": 0,
        }


async def test_a_new_follow_records_model_followed_once(client, platform, owner, llama):
    fan = await user_session(client)
    for _ in range(2):
        assert (
            await client.post(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
        ).status_code == 200

    async with session_scope(platform.sessionmaker) as session:
        events = list(
            await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "model.followed"))
        )
    assert [e.payload for e in events] == [
        {
            "model_id": llama["id"],
            "owner_id": owner.id,
            "follower_id": fan.id,
            "follower_username": fan.username,
        }
    ]


async def test_a_private_model_cannot_be_followed_by_others(
    client, platform, owner, tiny_llama_dir
):
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="secret", visibility="private")
    stranger = await user_session(client)
    path = f"/api/v1/models/{secret['id']}/follow"

    follow = await client.post(path, headers=stranger.headers)
    assert follow.status_code == 404
    assert follow.json()["code"] == "model_not_found"
    assert (await client.get(path)).status_code == 404
    assert (await client.post(path, headers=owner.headers)).status_code == 200


async def test_bad_model_ids_and_anonymous_follows_are_refused(client):
    fan = await user_session(client)
    bad = await client.post("/api/v1/models/not-a-uuid/follow", headers=fan.headers)
    assert bad.status_code == 422
    missing = await client.post(f"/api/v1/models/{uuid.uuid4()}/follow", headers=fan.headers)
    assert missing.status_code == 404
    anonymous = await client.post(f"/api/v1/models/{uuid.uuid4()}/follow")
    assert anonymous.status_code == 401


async def test_follows_of_people_are_projected_from_accounts_events(client, worker_ctx):
    fan, star = await user_session(client), await user_session(client)
    assert (
        await client.post(f"/api/v1/users/{star.username}/follow", headers=fan.headers)
    ).status_code == 200
    await consume(worker_ctx)
    await consume(worker_ctx)  # a replay changes nothing

    async with session_scope(worker_ctx["feed"].sessionmaker) as session:
        rows = list(await session.scalars(select(PersonFollow)))
    assert [(str(r.follower_id), str(r.followee_id)) for r in rows] == [(fan.id, star.id)]

    assert (
        await client.delete(f"/api/v1/users/{star.username}/follow", headers=fan.headers)
    ).status_code == 200
    await consume(worker_ctx)
    async with session_scope(worker_ctx["feed"].sessionmaker) as session:
        assert list(await session.scalars(select(PersonFollow))) == []
