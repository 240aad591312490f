"""Likes of posts through the gateway: idempotent and exact under concurrent calls."""

from __future__ import annotations

import asyncio

from tests.factories import user_session
from tests.feed.conftest import publish


async def test_likes_are_idempotent_under_concurrent_calls(client, worker_ctx, owner, llama):
    post = await publish(client, worker_ctx, owner, llama)
    fan = await user_session(client)
    path = f"/api/v1/posts/{post['id']}/like"

    likes = await asyncio.gather(*(client.post(path, headers=fan.headers) for _ in range(10)))
    assert [r.status_code for r in likes] == [200] * 10
    assert all(r.json()["liked"] for r in likes)
    assert (await client.get(f"/api/v1/posts/{post['id']}")).json()["like_count"] == 1

    both = await asyncio.gather(
        client.post(path, headers=owner.headers), client.post(path, headers=fan.headers)
    )
    assert [r.status_code for r in both] == [200, 200]
    assert (await client.get(f"/api/v1/posts/{post['id']}")).json()["like_count"] == 2

    unlikes = await asyncio.gather(*(client.delete(path, headers=fan.headers) for _ in range(10)))
    assert [r.status_code for r in unlikes] == [200] * 10
    assert all(r.json()["liked"] is False for r in unlikes)
    assert (await client.get(f"/api/v1/posts/{post['id']}")).json()["like_count"] == 1


async def test_only_published_posts_can_be_liked(client, owner, llama):
    response = await client.post(
        "/api/v1/posts", json={"model": llama["ref"], "prompt": "x"}, headers=owner.headers
    )
    like = await client.post(f"/api/v1/posts/{response.json()['id']}/like", headers=owner.headers)
    assert like.status_code == 409
    assert like.json()["code"] == "post_not_published"
    assert (await client.post(f"/api/v1/posts/{response.json()['id']}/like")).status_code == 401
