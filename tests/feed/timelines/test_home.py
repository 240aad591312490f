"""The home timeline: content, order, pagination, fan-out jobs, rebuild on follow changes."""

from __future__ import annotations

from tests.factories import user_session
from tests.feed.conftest import publish, ready_model
from tests.feed.timelines.helpers import settle


async def _follow_model(client, user, model) -> None:
    response = await client.post(f"/api/v1/models/{model['id']}/follow", headers=user.headers)
    assert response.status_code == 200, response.text


async def _home(client, user, **params) -> dict:
    response = await client.get("/api/v1/feed/home", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_home_holds_followed_models_and_models_of_followed_people_newest_first(
    client, platform, worker_ctx, owner, llama, tiny_llama_dir
):
    star = await user_session(client)
    star_model = await ready_model(platform, star, tiny_llama_dir, slug="starry")
    other = await ready_model(platform, owner, tiny_llama_dir, slug="unfollowed")
    fan = await user_session(client)
    await _follow_model(client, fan, llama)
    follow = await client.post(f"/api/v1/users/{star.username}/follow", headers=fan.headers)
    assert follow.status_code == 200
    await settle(worker_ctx)

    first = await publish(client, worker_ctx, owner, llama)
    by_star = await publish(client, worker_ctx, owner, star_model)
    await publish(client, worker_ctx, owner, other)
    newest = await publish(client, worker_ctx, owner, llama)
    reply = await client.post(
        f"/api/v1/posts/{newest['id']}/replies", json={"text": "hi"}, headers=fan.headers
    )
    assert reply.status_code == 202
    await settle(worker_ctx)

    home = await _home(client, fan)
    assert [p["id"] for p in home["items"]] == [newest["id"], by_star["id"], first["id"]]
    assert home["items"][0]["reply_count"] == 1
    assert home["next_cursor"] is None


async def test_home_pages_with_a_cursor(client, worker_ctx, owner, llama):
    fan = await user_session(client)
    await _follow_model(client, fan, llama)
    posts = [await publish(client, worker_ctx, owner, llama) for _ in range(3)]

    first = await _home(client, fan, limit=2)
    assert [p["id"] for p in first["items"]] == [posts[2]["id"], posts[1]["id"]]
    second = await _home(client, fan, limit=2, cursor=first["next_cursor"])
    assert [p["id"] for p in second["items"]] == [posts[0]["id"]]
    assert second["next_cursor"] is None


async def test_fan_out_jobs_write_new_posts_to_built_timelines(client, worker_ctx, owner, llama):
    fans = [await user_session(client) for _ in range(3)]
    for fan in fans:
        await _follow_model(client, fan, llama)
    for fan in fans[:2]:
        assert (await _home(client, fan))["items"] == []  # built (empty) in Redis
    await settle(worker_ctx)

    post = await publish(client, worker_ctx, owner, llama)
    # The two built timelines get the post from the job; the cold one reads the database.
    assert await settle(worker_ctx) == [2]
    for fan in fans:
        assert [p["id"] for p in (await _home(client, fan))["items"]] == [post["id"]]


async def test_fan_out_runs_in_batches_of_jobs(client, worker_ctx, owner, llama, monkeypatch):
    monkeypatch.setattr(worker_ctx["feed"].settings, "fanout_batch_size", 2)
    fans = [await user_session(client) for _ in range(5)]
    for fan in fans:
        await _follow_model(client, fan, llama)
        await _home(client, fan)
    await settle(worker_ctx)

    post = await publish(client, worker_ctx, owner, llama)
    assert await settle(worker_ctx) == [2, 2, 1]
    assert await settle(worker_ctx) == []  # a replayed event enqueues nothing twice
    for fan in fans:
        assert [p["id"] for p in (await _home(client, fan))["items"]] == [post["id"]]


async def test_unfollowing_rebuilds_the_home_timeline(client, worker_ctx, owner, llama):
    fan = await user_session(client)
    await _follow_model(client, fan, llama)
    await publish(client, worker_ctx, owner, llama)
    await settle(worker_ctx)
    assert len((await _home(client, fan))["items"]) == 1

    unfollow = await client.delete(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
    assert unfollow.status_code == 200
    assert (await _home(client, fan))["items"] == []


async def test_a_deleted_post_leaves_the_home_timeline(client, worker_ctx, owner, llama):
    fan = await user_session(client)
    await _follow_model(client, fan, llama)
    post = await publish(client, worker_ctx, owner, llama)
    assert len((await _home(client, fan))["items"]) == 1
    deleted = await client.delete(f"/api/v1/posts/{post['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    assert (await _home(client, fan))["items"] == []


async def test_home_needs_credentials_and_a_valid_cursor(client):
    assert (await client.get("/api/v1/feed/home")).status_code == 401
    fan = await user_session(client)
    bad = await client.get("/api/v1/feed/home", params={"cursor": "abc"}, headers=fan.headers)
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_cursor"
