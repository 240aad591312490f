"""Recommendations through the gateway: collaborative filtering over likes, follows and usage
blended with popularity; excluding what the caller already has and what they may not see;
popular picks for newcomers; a reason on every item; "more like this"."""

from __future__ import annotations

import uuid

from services.feed.config import FeedSettings
from services.feed.recommendations.tasks import compute_recommendations
from services.feed.worker import settings_for
from shared.db import session_scope
from shared.events import record_event
from tests.factories import user_session
from tests.feed.conftest import publish
from tests.feed.recommendations.conftest import model_ids, post_ids, recommendations_for
from tests.inference.conftest import ready_model


async def like(client, user, post):
    response = await client.post(f"/api/v1/posts/{post['id']}/like", headers=user.headers)
    assert response.status_code == 200


async def follow_model(client, user, model):
    response = await client.post(f"/api/v1/models/{model['id']}/follow", headers=user.headers)
    assert response.status_code == 200


async def test_a_newcomer_gets_popular_picks(client, worker_ctx, recommender, owner, llama):
    posts = [await publish(client, worker_ctx, owner, llama, f"Topic {i}.") for i in range(3)]
    fans = [await user_session(client) for _ in range(2)]
    for fan in fans:
        await like(client, fan, posts[1])
        await follow_model(client, fan, llama)
    await like(client, fans[0], posts[2])
    await recommender.run()

    newcomer = await user_session(client)
    body = await recommendations_for(client, newcomer)
    assert body["personalized"] is False
    assert post_ids(body)[:2] == [posts[1]["id"], posts[2]["id"]]
    assert body["posts"][0]["reason"] == "Popular on llmnet right now."
    assert body["posts"][0]["post"]["content"] == posts[1]["content"]
    assert model_ids(body) == [llama["id"]]
    assert body["models"][0]["ref"] == llama["ref"]
    assert body["models"][0]["reason"] == "Popular on llmnet."


async def test_recommendations_follow_likes_and_leave_out_liked_posts(
    client, worker_ctx, recommender, owner, llama
):
    p1, p2, p3 = [await publish(client, worker_ctx, owner, llama, f"Topic {i}.") for i in range(3)]
    reader, peer = await user_session(client), await user_session(client)
    await like(client, peer, p1)
    await like(client, peer, p3)
    await recommender.run()
    assert (await recommendations_for(client, reader))["personalized"] is False

    await like(client, reader, p1)
    await recommender.run()
    body = await recommendations_for(client, reader)
    assert body["personalized"] is True
    assert post_ids(body)[0] == p3["id"]
    assert (
        body["posts"][0]["reason"] == f"People who liked a post by {llama['ref']} also like this."
    )
    assert p1["id"] not in post_ids(body)

    await like(client, reader, p3)
    await recommender.run()
    body = await recommendations_for(client, reader)
    assert p1["id"] not in post_ids(body)
    assert p3["id"] not in post_ids(body)
    assert post_ids(body) == [p2["id"]]


async def test_models_the_caller_follows_or_liked_are_left_out(
    client, platform, worker_ctx, recommender, owner, llama, tiny_llama_dir
):
    second = await ready_model(platform, owner, tiny_llama_dir, slug="second")
    await publish(client, worker_ctx, owner, second)
    reader, peer = await user_session(client), await user_session(client)
    await follow_model(client, peer, llama)
    await follow_model(client, peer, second)
    await follow_model(client, reader, llama)
    await recommender.run()

    body = await recommendations_for(client, reader)
    assert model_ids(body) == [second["id"]]
    assert body["models"][0]["reason"] == f"People who liked {llama['ref']} also like this."

    liked = await client.post(f"/api/v1/models/{second['id']}/like", headers=reader.headers)
    assert liked.status_code == 200
    await recommender.run()
    assert model_ids(await recommendations_for(client, reader)) == []


async def test_usage_counts_as_a_signal(
    client, platform, worker_ctx, recommender, owner, llama, tiny_llama_dir
):
    second = await ready_model(platform, owner, tiny_llama_dir, slug="second")
    await publish(client, worker_ctx, owner, second)
    reader, peer = await user_session(client), await user_session(client)
    async with session_scope(platform.sessionmaker) as session:
        for user, model in ((peer, llama), (peer, second), (reader, llama)):
            record_event(
                session,
                "model.usage",
                {"model_id": model["id"], "user_id": user.id, "latency_ms": 5.0},
                source="inference",
            )
    await recommender.run()

    body = await recommendations_for(client, reader)
    assert body["personalized"] is True
    assert model_ids(body)[0] == second["id"]


async def test_people_to_follow_leave_out_those_followed(
    client, platform, worker_ctx, recommender, owner, llama, tiny_llama_dir
):
    maker = await user_session(client)
    theirs = await ready_model(platform, maker, tiny_llama_dir, slug="theirs")
    await publish(client, worker_ctx, owner, llama)
    await publish(client, worker_ctx, maker, theirs)
    reader, peer = await user_session(client), await user_session(client)
    for user, followee in ((peer, owner), (peer, maker), (reader, owner)):
        response = await client.post(
            f"/api/v1/users/{followee.username}/follow", headers=user.headers
        )
        assert response.status_code == 200
    await recommender.run()

    body = await recommendations_for(client, reader)
    assert [(p["id"], p["username"]) for p in body["people"]] == [(maker.id, maker.username)]
    assert body["people"][0]["reason"] == f"People who follow @{owner.username} also like this."


async def test_a_private_models_posts_are_never_recommended_to_outsiders(
    client, platform, worker_ctx, recommender, owner, llama, tiny_llama_dir
):
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="secret", visibility="private")
    public = await publish(client, worker_ctx, owner, llama)
    hidden = await publish(client, worker_ctx, owner, secret)
    fan, outsider = await user_session(client), await user_session(client)
    await like(client, fan, public)
    await like(client, owner, public)
    await like(client, owner, hidden)
    await like(client, outsider, public)
    await recommender.run()

    body = await recommendations_for(client, outsider)
    assert hidden["id"] not in post_ids(body)
    assert secret["id"] not in model_ids(body)
    similar = await client.get(
        f"/api/v1/recommendations/posts/{public['id']}/similar", headers=outsider.headers
    )
    assert similar.status_code == 200
    assert similar.json()["items"] == []
    hidden_similar = await client.get(
        f"/api/v1/recommendations/posts/{hidden['id']}/similar", headers=outsider.headers
    )
    assert hidden_similar.status_code == 404


async def test_every_item_says_why(client, worker_ctx, recommender, owner, llama):
    posts = [await publish(client, worker_ctx, owner, llama, f"Topic {i}.") for i in range(3)]
    users = [await user_session(client) for _ in range(3)]
    for i, user in enumerate(users):
        await like(client, user, posts[i])
        await like(client, user, posts[(i + 1) % 3])
        await follow_model(client, user, llama)
    await recommender.run()

    for user in [*users, await user_session(client)]:
        body = await recommendations_for(client, user)
        items = body["models"] + body["people"] + body["posts"]
        assert all(isinstance(i["reason"], str) and i["reason"] for i in items)
        assert all(i["score"] > 0 for i in items)


async def test_more_like_this_post_and_model(
    client, platform, worker_ctx, recommender, owner, llama, tiny_llama_dir
):
    second = await ready_model(platform, owner, tiny_llama_dir, slug="second")
    p1, p2 = [await publish(client, worker_ctx, owner, llama, f"Topic {i}.") for i in range(2)]
    await publish(client, worker_ctx, owner, second)
    fans = [await user_session(client) for _ in range(2)]
    for fan in fans:
        await like(client, fan, p1)
        await like(client, fan, p2)
        await follow_model(client, fan, llama)
        await follow_model(client, fan, second)
    await recommender.run()
    reader = await user_session(client)

    posts = await client.get(
        f"/api/v1/recommendations/posts/{p1['id']}/similar", headers=reader.headers
    )
    assert posts.status_code == 200
    assert [i["post"]["id"] for i in posts.json()["items"]] == [p2["id"]]
    assert posts.json()["items"][0]["reason"] == "Liked by the same people as this post."
    models = await client.get(
        f"/api/v1/recommendations/models/{llama['id']}/similar", headers=reader.headers
    )
    assert models.status_code == 200
    assert [i["id"] for i in models.json()["items"]] == [second["id"]]


async def test_bad_requests_are_refused(client, owner):
    assert (await client.get("/api/v1/recommendations")).status_code == 401
    missing = await client.get(
        f"/api/v1/recommendations/posts/{uuid.uuid4()}/similar", headers=owner.headers
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "post_not_found"
    no_model = await client.get(
        f"/api/v1/recommendations/models/{uuid.uuid4()}/similar", headers=owner.headers
    )
    assert no_model.status_code == 404
    assert no_model.json()["code"] == "model_not_found"
    bad = await client.get("/api/v1/recommendations", params={"limit": 0}, headers=owner.headers)
    assert bad.status_code == 422


def test_the_feed_worker_recomputes_recommendations_on_a_cron():
    settings = FeedSettings(
        database_url="postgresql+asyncpg://db/feed",
        redis_url="redis://redis",
        internal_token="i" * 32,
        service_token="s" * 32,
        recommendations_interval_minutes=15,
    )
    worker = settings_for(settings)
    assert compute_recommendations in worker["functions"]
    (job,) = [c for c in worker["cron_jobs"] if c.coroutine is compute_recommendations]
    assert job.minute == {0, 15, 30, 45}
    assert job.run_at_startup is True
