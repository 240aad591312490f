"""Models: who may create them, visibility, grants, search and sorting, likes, limits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, update

from services.models_hub.models import Model, ModelVersion
from shared.db import session_scope
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


async def test_granting_the_owner_is_a_conflict(client):
    owner = await developer(client)
    model = await create_model(client, owner, name="Mine", visibility="private")
    response = await client.post(
        f"/api/v1/models/{model['id']}/grants",
        json={"username": owner.username},
        headers=owner.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "grant_to_owner"


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


async def test_search_text_is_matched_literally(client):
    dev = await developer(client)
    for name in ("100% Poet", "Plain_Prose", "Other"):
        await create_model(client, dev, name=name)

    async def names(q: str) -> list[str]:
        page = (await client.get("/api/v1/models", params={"q": q})).json()
        return sorted(m["name"] for m in page["items"])

    # LIKE's wildcards in the search text match themselves only.
    assert await names("%") == ["100% Poet"]
    assert await names("_") == ["Plain_Prose"]
    assert await names("n_p") == ["Plain_Prose"]


@contextmanager
def hub_statements(platform: Any) -> Iterator[list[str]]:
    """The SQL the model hub runs meanwhile."""
    engine = platform.apps["models_hub"].state.engine.sync_engine
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_page_costs_the_same_statements_however_long(client, platform):
    dev = await developer(client)
    fan = await user_session(client)
    models = [await create_model(client, dev, name=f"Model {i}") for i in range(6)]
    async with session_scope(platform.sessionmaker) as session:
        for created in models:
            model_id = uuid.UUID(created["id"])
            version = ModelVersion(
                model_id=model_id, owner_id=uuid.UUID(dev.id), number=1, status="ready"
            )
            session.add(version)
            await session.flush()
            await session.execute(
                update(Model)
                .where(Model.id == model_id)
                .values(active_version_id=version.id, status="ready")
            )
    await client.post(f"/api/v1/models/{models[0]['id']}/like", headers=fan.headers)

    async def page(limit: int) -> tuple[list[dict[str, Any]], int]:
        with hub_statements(platform) as seen:
            response = await client.get(
                "/api/v1/models", params={"limit": limit}, headers=fan.headers
            )
        assert response.status_code == 200
        # Only the statements on the hub's tables: the event relay polls the outbox meanwhile.
        return response.json()["items"], len([s for s in seen if "model" in s])

    short, short_cost = await page(2)
    long, long_cost = await page(6)
    assert len(short) == 2
    assert len(long) == 6
    assert all(m["active_version"]["number"] == 1 for m in long)
    assert [m["liked_by_me"] for m in long].count(True) == 1
    assert long_cost == short_cost
