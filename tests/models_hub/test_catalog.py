"""Models: who may create them, visibility, grants, search and sorting, likes, limits, stats."""

from __future__ import annotations

import uuid

import pytest

from services.models_hub.usage.consumer import usage_consumer
from shared.db import session_scope
from shared.events import EventRelay, record_event
from shared.redis_client import create_redis
from tests.factories import admin_session, user_session
from tests.models_hub.conftest import create_model, developer


async def test_only_model_developers_create_models(client):
    user = await user_session(client)
    refused = await client.post("/api/v1/models", json={"name": "Nope"}, headers=user.headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_model_developer"

    dev = await developer(client, "poetdev")
    created = await create_model(
        client,
        dev,
        name="Tiny Poet",
        tags=["Poetry", "small"],
        default_params={"temperature": 0.7, "max_tokens": 64},
        system_prompt="You write haiku.",
    )
    assert created["ref"] == "poetdev/tiny-poet"
    assert created["tags"] == ["poetry", "small"]
    assert created["status"] == "empty"
    assert created["default_params"] == {"temperature": 0.7, "max_tokens": 64}
    assert created["owner"]["username"] == "poetdev"


async def test_bad_model_fields_are_422_naming_them(client):
    dev = await developer(client)
    for body, field in (
        ({"name": "x", "slug": "Bad Slug!"}, "slug"),
        ({"name": "x", "tags": ["no spaces"]}, "tags.0"),
        ({"name": "x", "visibility": "secret"}, "visibility"),
        ({"name": "x", "default_params": {"temperature": 5}}, "default_params.temperature"),
        ({"name": ""}, "name"),
    ):
        response = await client.post("/api/v1/models", json=body, headers=dev.headers)
        assert response.status_code == 422, body
        assert response.json()["fields"][0]["field"] == field


async def test_slug_is_unique_per_owner(client):
    first = await developer(client)
    second = await developer(client)
    await create_model(client, first, name="Same")
    duplicate = await client.post("/api/v1/models", json={"name": "Same"}, headers=first.headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "slug_taken"
    other = await create_model(client, second, name="Same")
    assert other["slug"] == "same"


async def test_private_models_do_not_exist_for_others(client, platform):
    owner = await developer(client)
    other = await user_session(client)
    admin = await admin_session(client, platform)
    private = await create_model(client, owner, name="Secret", visibility="private")
    path = f"/api/v1/models/{private['id']}"

    assert (await client.get(path, headers=owner.headers)).status_code == 200
    assert (await client.get(path, headers=admin.headers)).status_code == 200
    for headers in (other.headers, {}):
        hidden = await client.get(path, headers=headers)
        assert hidden.status_code == 404
        assert hidden.json()["code"] == "model_not_found"
    listed = (await client.get("/api/v1/models", headers=other.headers)).json()["items"]
    assert private["id"] not in [m["id"] for m in listed]
    own = (await client.get("/api/v1/models", headers=owner.headers)).json()["items"]
    assert private["id"] in [m["id"] for m in own]
    patch = await client.patch(path, json={"name": "x"}, headers=other.headers)
    assert patch.status_code == 404


async def test_unlisted_models_are_reachable_but_not_listed(client):
    owner = await developer(client)
    unlisted = await create_model(client, owner, name="Quiet", visibility="unlisted")
    assert (await client.get(f"/api/v1/models/{unlisted['id']}")).status_code == 200
    assert (await client.get(f"/api/v1/models/by-ref/{unlisted['ref']}")).status_code == 200
    listed = (await client.get("/api/v1/models")).json()["items"]
    assert unlisted["id"] not in [m["id"] for m in listed]


async def test_grants_give_use_or_manage(client):
    owner = await developer(client)
    friend = await user_session(client, "friend")
    private = await create_model(client, owner, name="Shared", visibility="private")
    path = f"/api/v1/models/{private['id']}"

    granted = await client.post(
        f"{path}/grants", json={"username": "friend"}, headers=owner.headers
    )
    assert granted.status_code == 201
    assert granted.json()["level"] == "use"
    assert (await client.get(path, headers=friend.headers)).status_code == 200
    cannot_edit = await client.patch(path, json={"name": "Mine now"}, headers=friend.headers)
    assert cannot_edit.status_code == 403

    await client.post(
        f"{path}/grants", json={"username": "friend", "level": "manage"}, headers=owner.headers
    )
    edited = await client.patch(path, json={"description": "managed"}, headers=friend.headers)
    assert edited.status_code == 200
    cannot_delete = await client.delete(path, headers=friend.headers)
    assert cannot_delete.status_code == 403

    grants = (await client.get(f"{path}/grants", headers=owner.headers)).json()
    assert [g["username"] for g in grants] == ["friend"]
    revoked = await client.delete(f"{path}/grants/friend", headers=owner.headers)
    assert revoked.status_code == 204
    assert (await client.get(path, headers=friend.headers)).status_code == 404

    nobody = await client.post(f"{path}/grants", json={"username": "ghost"}, headers=owner.headers)
    assert nobody.status_code == 404


async def test_update_and_delete(client):
    owner = await developer(client)
    model = await create_model(client, owner, card="# Hello", tags=["a"])
    path = f"/api/v1/models/{model['id']}"
    updated = await client.patch(path, json={"card": "# New", "tags": None}, headers=owner.headers)
    assert updated.status_code == 200
    assert updated.json()["card"] == "# New"
    assert updated.json()["tags"] == []
    assert updated.json()["description"] == model["description"]
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.get(path, headers=owner.headers)).status_code == 404


async def test_search_filters_and_sorts(client):
    alice = await developer(client, "alice")
    bob = await developer(client, "bob")
    poet = await create_model(
        client, alice, name="Poet", description="writes verse", tags=["poetry"]
    )
    coder = await create_model(client, bob, name="Coder", description="writes code", tags=["code"])
    chatty = await create_model(client, bob, name="Chatty", tags=["chat", "poetry"])
    fan = await user_session(client)
    for model in (chatty, chatty, poet):  # liking twice is idempotent
        await client.post(f"/api/v1/models/{model['id']}/like", headers=fan.headers)
    await client.post(f"/api/v1/models/{poet['id']}/like", headers=alice.headers)

    async def names(**params):
        page = (await client.get("/api/v1/models", params=params)).json()
        return [m["name"] for m in page["items"]]

    assert await names(q="verse") == ["Poet"]
    assert set(await names(q="poetry")) == {"Poet", "Chatty"}
    assert set(await names(owner="bob")) == {"Coder", "Chatty"}
    assert await names(tag="code") == ["Coder"]
    assert await names(sort="recent") == ["Chatty", "Coder", "Poet"]
    assert await names(sort="most_liked") == ["Poet", "Chatty", "Coder"]
    assert (await names(sort="trending"))[0] == "Poet"
    assert await names(source="remote") == []
    assert await names(status="empty", sort="recent") == ["Chatty", "Coder", "Poet"]
    assert coder["status"] == "empty"

    # Cursor pagination walks every model once, for keyset and trending sorts alike.
    for sort in ("recent", "most_liked", "trending"):
        seen, cursor = [], None
        while True:
            params = {"sort": sort, "limit": 1} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/api/v1/models", params=params)).json()
            seen += [m["id"] for m in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(m["id"] for m in (poet, coder, chatty)), sort

    bad = await client.get("/api/v1/models", params={"sort": "best"})
    assert bad.status_code == 422


async def test_likes_are_idempotent_and_counted(client):
    owner = await developer(client)
    fan = await user_session(client)
    model = await create_model(client, owner)
    path = f"/api/v1/models/{model['id']}/like"
    assert (await client.post(path, headers=fan.headers)).json() == {
        "liked": True,
        "likes_count": 1,
    }
    assert (await client.post(path, headers=fan.headers)).json() == {
        "liked": True,
        "likes_count": 1,
    }
    seen = (await client.get(f"/api/v1/models/{model['id']}", headers=fan.headers)).json()
    assert seen["liked_by_me"] is True
    assert (await client.delete(path, headers=fan.headers)).json() == {
        "liked": False,
        "likes_count": 0,
    }
    assert (await client.post(path)).status_code == 401


async def test_models_per_user_are_capped(client, hub_limits):
    hub_limits(max_models_per_user=2)
    dev = await developer(client)
    await create_model(client, dev, name="One")
    await create_model(client, dev, name="Two")
    third = await client.post("/api/v1/models", json={"name": "Three"}, headers=dev.headers)
    assert third.status_code == 429
    assert third.json()["code"] == "model_limit"
    assert "retry-after" in third.headers


async def test_usage_events_update_statistics(client, platform):
    dev = await developer(client)
    model = await create_model(client, dev)
    async with session_scope(platform.sessionmaker) as session:
        for latency in (100.0, 200.0, 300.0, 400.0):
            record_event(
                session,
                "model.usage",
                {
                    "model_id": model["id"],
                    "latency_ms": latency,
                    "completion_tokens": 10,
                    "prompt_tokens": 5,
                },
                source="inference",
            )
        # Malformed events are dropped, not retried forever.
        record_event(session, "model.usage", {"model_id": str(uuid.uuid4())}, source="inference")
    await EventRelay(platform.sessionmaker, platform.redis).publish_pending()
    events_redis = create_redis(platform.common["redis_url"])
    consumer = usage_consumer({"events_redis": events_redis, "sessionmaker": platform.sessionmaker})
    await consumer.ensure_groups()
    await consumer.consume_once()
    await events_redis.aclose()

    stats = (await client.get(f"/api/v1/models/{model['id']}")).json()["stats"]
    assert stats["usage_count"] == 4
    assert stats["tokens_generated"] == 40
    assert stats["avg_latency_ms"] == 250.0
    assert stats["p95_latency_ms"] == pytest.approx(385.0)
    assert stats["last_used_at"] is not None
    # Clients cannot set statistics.
    refused = await client.patch(
        f"/api/v1/models/{model['id']}", json={"usage_count": 1_000_000}, headers=dev.headers
    )
    assert refused.status_code == 422
