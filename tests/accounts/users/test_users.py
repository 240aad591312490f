"""Profiles, follows and their lists."""

from __future__ import annotations

import httpx

from tests.factories import user_session


async def test_update_profile_and_read_it_publicly(client):
    user = await user_session(client, "grace")
    response = await client.patch(
        "/api/v1/users/me",
        json={
            "display_name": "Grace H.",
            "bio": "COBOL",
            "avatar_url": "https://img.example/g.png",
            "is_model_developer": True,
        },
        headers=user.headers,
    )
    assert response.status_code == 200
    assert response.json()["is_model_developer"] is True

    public = await client.get("/api/v1/users/grace")  # anonymous
    assert public.status_code == 200
    body = public.json()
    assert body["display_name"] == "Grace H."
    assert body["avatar_url"] == "https://img.example/g.png"
    assert "email" not in body
    assert body["followed_by_me"] is None


async def test_profile_update_rejects_bad_fields(client):
    user = await user_session(client)
    bad_url = await client.patch(
        "/api/v1/users/me", json={"avatar_url": "javascript:alert(1)"}, headers=user.headers
    )
    assert bad_url.status_code == 422
    assert bad_url.json()["fields"][0]["field"] == "avatar_url"
    unknown = await client.patch("/api/v1/users/me", json={"role": "admin"}, headers=user.headers)
    assert unknown.status_code == 422
    assert unknown.json()["fields"][0]["field"] == "role"


async def test_follow_unfollow_and_counts(client):
    alice = await user_session(client, "alice")
    bob = await user_session(client, "bob")
    followed = await client.post("/api/v1/users/bob/follow", headers=alice.headers)
    assert followed.status_code == 200
    assert followed.json() == {"following": True, "followers_count": 1}
    # Idempotent.
    again = await client.post("/api/v1/users/bob/follow", headers=alice.headers)
    assert again.json()["followers_count"] == 1

    profile = (await client.get("/api/v1/users/bob", headers=alice.headers)).json()
    assert profile["followers_count"] == 1
    assert profile["followed_by_me"] is True
    mine = (await client.get("/api/v1/users/me", headers=alice.headers)).json()
    assert mine["following_count"] == 1

    followers = (await client.get("/api/v1/users/bob/followers")).json()
    assert [e["user"]["username"] for e in followers["items"]] == ["alice"]
    following = (await client.get("/api/v1/users/alice/following")).json()
    assert [e["user"]["username"] for e in following["items"]] == ["bob"]

    unfollowed = await client.delete("/api/v1/users/bob/follow", headers=alice.headers)
    assert unfollowed.json() == {"following": False, "followers_count": 0}
    assert (await client.get("/api/v1/users/bob/followers")).json()["items"] == []
    assert bob.username == "bob"


async def test_follow_errors(client):
    alice = await user_session(client)
    self_follow = await client.post(f"/api/v1/users/{alice.username}/follow", headers=alice.headers)
    assert self_follow.status_code == 400
    assert self_follow.json()["code"] == "cannot_follow_self"
    missing = await client.post("/api/v1/users/ghost/follow", headers=alice.headers)
    assert missing.status_code == 404
    anonymous = await client.post("/api/v1/users/ghost/follow")
    assert anonymous.status_code == 401


async def test_followers_are_paginated_with_a_cursor(client):
    star = await user_session(client, "star")
    fans = [await user_session(client, f"fan{i}") for i in range(5)]
    for fan in fans:
        await client.post("/api/v1/users/star/follow", headers=fan.headers)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/users/star/followers", params=params)).json()
        seen += [e["user"]["username"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"fan{i}" for i in reversed(range(5))]  # newest first, no repeats
    assert star.username == "star"

    bad = await client.get("/api/v1/users/star/followers", params={"cursor": "garbage!"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_cursor"
    too_many = await client.get("/api/v1/users/star/followers", params={"limit": 1000})
    assert too_many.status_code == 422
    assert too_many.json()["fields"][0]["field"] == "limit"


async def test_follow_publishes_an_event(client, platform):
    await user_session(client, "watcher")
    watcher = await user_session(client, "watched")
    await client.post("/api/v1/users/watcher/follow", headers=watcher.headers)
    for _ in range(50):
        entries = await platform.redis.xrange("llmnet:events:user")
        followed = [e for _, e in entries if e["type"] == "user.followed"]
        if followed:
            break
        import asyncio

        await asyncio.sleep(0.1)
    assert followed, "user.followed never reached the stream"
    assert '"followee_username": "watcher"' in followed[0]["payload"]


async def test_services_ignore_forged_identity_headers(platform):
    async with httpx.AsyncClient(base_url=platform.service_urls["accounts"]) as direct:
        response = await direct.get(
            "/api/v1/users/me",
            headers={
                "x-llmnet-user-id": "00000000-0000-0000-0000-000000000001",
                "x-llmnet-scopes": "read write admin",
                "x-llmnet-role": "admin",
            },
        )
    assert response.status_code == 401
