"""Public, model, person and trending timelines; private models' posts hidden in each."""

from __future__ import annotations

import uuid

from services.feed.timelines.trending import RANKING_KEY
from tests.factories import user_session
from tests.feed.conftest import publish, ready_model
from tests.feed.timelines.helpers import settle


async def _ids(client, path, user=None, **params) -> list[str]:
    headers = user.headers if user else {}
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["items"]]


async def test_public_timeline_lists_root_posts_newest_first(client, worker_ctx, owner, llama):
    first = await publish(client, worker_ctx, owner, llama)
    second = await publish(client, worker_ctx, owner, llama)
    reply = await client.post(
        f"/api/v1/posts/{first['id']}/replies", json={"text": "a reply"}, headers=owner.headers
    )
    assert reply.status_code == 202
    assert await _ids(client, "/api/v1/feed/public") == [second["id"], first["id"]]


async def test_model_and_person_timelines(
    client, platform, worker_ctx, owner, llama, tiny_llama_dir
):
    other = await ready_model(platform, owner, tiny_llama_dir, slug="other")
    someone = await user_session(client)
    theirs = await ready_model(platform, someone, tiny_llama_dir, slug="theirs")
    a = await publish(client, worker_ctx, owner, llama)
    b = await publish(client, worker_ctx, owner, other)
    c = await publish(client, worker_ctx, owner, theirs)

    assert await _ids(client, f"/api/v1/feed/models/{llama['id']}") == [a["id"]]
    assert await _ids(client, f"/api/v1/feed/users/{owner.id}") == [b["id"], a["id"]]
    assert await _ids(client, f"/api/v1/feed/users/{someone.id}") == [c["id"]]
    missing = await client.get(f"/api/v1/feed/models/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "model_not_found"


async def test_private_models_posts_are_hidden_in_every_listing(
    client, platform, worker_ctx, owner, llama, tiny_llama_dir
):
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="secret", visibility="private")
    stranger = await user_session(client)
    # The stranger followed the owner, so the secret model's posts are fanned out to them too.
    follow = await client.post(f"/api/v1/users/{owner.username}/follow", headers=stranger.headers)
    assert follow.status_code == 200
    await client.get("/api/v1/feed/home", headers=stranger.headers)
    await settle(worker_ctx)
    hidden = await publish(client, worker_ctx, owner, secret)
    shown = await publish(client, worker_ctx, owner, llama)
    like = await client.post(f"/api/v1/posts/{hidden['id']}/like", headers=owner.headers)
    assert like.status_code == 200
    await settle(worker_ctx)

    for path in ("/api/v1/feed/home", "/api/v1/feed/public", "/api/v1/feed/trending"):
        assert hidden["id"] not in await _ids(client, path, stranger), path
        assert shown["id"] in await _ids(client, path, stranger), path
    assert await _ids(client, f"/api/v1/feed/users/{owner.id}", stranger) == [shown["id"]]
    assert await _ids(client, f"/api/v1/feed/users/{owner.id}") == [shown["id"]]
    assert (await client.get(f"/api/v1/feed/models/{secret['id']}")).status_code == 404
    # The owner sees them.
    assert hidden["id"] in await _ids(client, "/api/v1/feed/public", owner)
    assert await _ids(client, f"/api/v1/feed/models/{secret['id']}", owner) == [hidden["id"]]


async def test_trending_ranks_by_likes_and_replies(client, worker_ctx, owner, llama):
    quiet = await publish(client, worker_ctx, owner, llama)
    liked = await publish(client, worker_ctx, owner, llama)
    discussed = await publish(client, worker_ctx, owner, llama)
    people = [await user_session(client) for _ in range(3)]
    for person in people[:2]:
        response = await client.post(f"/api/v1/posts/{liked['id']}/like", headers=person.headers)
        assert response.status_code == 200
    for person in people:
        response = await client.post(
            f"/api/v1/posts/{discussed['id']}/replies", json={"text": "yes"}, headers=person.headers
        )
        assert response.status_code == 202
    await settle(worker_ctx)

    ranked = await _ids(client, "/api/v1/feed/trending")
    assert ranked == [discussed["id"], liked["id"], quiet["id"]]
    page = (await client.get("/api/v1/feed/trending", params={"limit": 2})).json()
    assert [p["id"] for p in page["items"]] == ranked[:2]
    rest = await _ids(client, "/api/v1/feed/trending", limit=2, cursor=page["next_cursor"])
    assert rest == [quiet["id"]]


async def test_an_unlike_takes_its_like_back_from_trending(client, worker_ctx, owner, llama):
    steady = await publish(client, worker_ctx, owner, llama)
    fading = await publish(client, worker_ctx, owner, llama)
    fans = [await user_session(client) for _ in range(2)]
    like = f"/api/v1/posts/{steady['id']}/like"
    assert (await client.post(like, headers=fans[0].headers)).status_code == 200
    for fan in fans:
        like = f"/api/v1/posts/{fading['id']}/like"
        assert (await client.post(like, headers=fan.headers)).status_code == 200
    await settle(worker_ctx)
    assert await _ids(client, "/api/v1/feed/trending") == [fading["id"], steady["id"]]

    for fan in fans:
        unlike = await client.delete(f"/api/v1/posts/{fading['id']}/like", headers=fan.headers)
        assert unlike.status_code == 200
    await settle(worker_ctx)
    await worker_ctx["events_redis"].delete(RANKING_KEY)  # the cached ranking expires
    assert await _ids(client, "/api/v1/feed/trending") == [steady["id"], fading["id"]]


async def test_a_replayed_event_does_not_count_twice_in_trending(client, worker_ctx, owner, llama):
    once = await publish(client, worker_ctx, owner, llama)
    twice = await publish(client, worker_ctx, owner, llama)
    fan = await user_session(client)
    for post in (once, twice):
        assert (
            await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
        ).status_code == 200
    await settle(worker_ctx)
    # Every event read again by a fresh group (as after a lost acknowledgement).
    await worker_ctx["events_redis"].xgroup_destroy("llmnet:events:post", "feed.timelines")
    await settle(worker_ctx)
    assert (await client.get("/api/v1/feed/trending")).status_code == 200
    ranking = await worker_ctx["events_redis"].zrange(
        "llmnet:feed:trending:ranking", 0, -1, withscores=True
    )
    assert sorted(score for _, score in ranking) == [1.25, 1.25]
