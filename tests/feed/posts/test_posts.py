"""Posts through the gateway: generation by the feed job, replies and threads, idempotency,
the sweeper, private models, deletion and every bad input."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import pytest
from arq import Retry
from sqlalchemy import func, select, update

from services.feed.models import Post
from services.feed.posts.inference import InferenceClient
from services.feed.posts.tasks import MAX_TRIES, generate_post, sweep_posts
from shared.db import session_scope, utcnow
from tests.factories import admin_session, user_session
from tests.feed.conftest import publish, ready_model, run_jobs


async def _post_count(platform) -> int:
    async with session_scope(platform.sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(Post)) or 0)


async def test_a_post_is_generated_end_to_end(client, platform, worker_ctx, owner, llama):
    reader = await user_session(client)
    response = await client.post(
        "/api/v1/posts",
        json={"model": llama["ref"], "prompt": "Tell me about foxes.", "max_tokens": 6},
        headers=reader.headers,
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "generating"
    assert created["content"] is None
    assert created["author"] == {
        "kind": "model",
        "model_id": llama["id"],
        "model_ref": llama["ref"],
        "owner_id": owner.id,
        "owner_username": owner.username,
    }
    assert created["model_version_id"] == llama["version_id"]
    assert created["parameters"] == {"max_tokens": 6}
    assert isinstance(created["seed"], int)

    assert await run_jobs(worker_ctx) == ["published"]

    post = (await client.get(f"/api/v1/posts/{created['id']}")).json()
    assert post["status"] == "published"
    assert isinstance(post["content"], str)
    assert post["prompt_tokens"] > 0
    assert 0 < post["completion_tokens"] <= 6
    assert post["latency_ms"] > 0
    assert post["published_at"] is not None
    assert post["root_id"] == post["id"]
    assert post["depth"] == 0


async def test_the_same_seed_writes_the_same_post(client, worker_ctx, owner, llama):
    bodies = []
    for _ in range(2):
        response = await client.post(
            "/api/v1/posts",
            json={"model": llama["ref"], "prompt": "Foxes?", "max_tokens": 6, "seed": 7},
            headers=owner.headers,
        )
        assert response.status_code == 202, response.text
        bodies.append(response.json())
    await run_jobs(worker_ctx)
    first, second = [(await client.get(f"/api/v1/posts/{b['id']}")).json() for b in bodies]
    assert first["seed"] == second["seed"] == 7
    assert first["content"] == second["content"]


async def test_a_job_retried_after_success_changes_nothing(
    client, platform, worker_ctx, owner, llama
):
    response = await client.post(
        "/api/v1/posts",
        json={"model": llama["ref"], "prompt": "Foxes?", "max_tokens": 6},
        headers={**owner.headers, "Idempotency-Key": "post-1"},
    )
    assert response.status_code == 202, response.text
    (job,) = await worker_ctx["redis"].queued_jobs(queue_name="llmnet:feed")
    assert await generate_post(worker_ctx, *job.args) == "published"
    published = (await client.get(f"/api/v1/posts/{response.json()['id']}")).json()

    # The worker crashed after writing, and arq runs the job again.
    assert await generate_post({**worker_ctx, "job_try": 2}, *job.args) == "skipped"
    # The client retries its request with the same key.
    again = await client.post(
        "/api/v1/posts",
        json={"model": llama["ref"], "prompt": "Foxes?", "max_tokens": 6},
        headers={**owner.headers, "Idempotency-Key": "post-1"},
    )
    assert again.status_code == 202
    assert again.json()["id"] == published["id"]
    assert await _post_count(platform) == 1
    after = (await client.get(f"/api/v1/posts/{published['id']}")).json()
    assert after["content"] == published["content"]
    assert after["published_at"] == published["published_at"]


async def test_concurrent_requests_with_one_key_make_one_post(client, platform, owner, llama):
    body = {"model": llama["ref"], "prompt": "Foxes?"}
    headers = {**owner.headers, "Idempotency-Key": "same"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/posts", json=body, headers=headers) for _ in range(5))
    )
    assert [r.status_code for r in responses] == [202] * 5
    assert len({r.json()["id"] for r in responses}) == 1
    assert await _post_count(platform) == 1
    queued = await platform.redis.zcard("llmnet:feed")
    assert queued == 1


async def test_the_sweeper_fails_a_stuck_post(client, platform, worker_ctx, owner, llama):
    response = await client.post(
        "/api/v1/posts", json={"model": llama["ref"], "prompt": "Foxes?"}, headers=owner.headers
    )
    post_id = uuid.UUID(response.json()["id"])
    timeout = worker_ctx["feed"].settings.post_timeout_seconds
    async with session_scope(platform.sessionmaker) as session:
        await session.execute(
            update(Post)
            .where(Post.id == post_id)
            .values(created_at=utcnow() - timedelta(seconds=timeout + 5))
        )
    assert await sweep_posts(worker_ctx) == {"failed": 1}
    post = (await client.get(f"/api/v1/posts/{post_id}")).json()
    assert post["status"] == "failed"
    assert "not written within" in post["failure_reason"]
    # Its job, run late, leaves the failure as it is.
    assert await run_jobs(worker_ctx) == ["skipped"]
    assert (await client.get(f"/api/v1/posts/{post_id}")).json()["status"] == "failed"


async def test_a_reply_sees_the_thread_and_the_thread_reads_in_order(
    client, worker_ctx, owner, llama
):
    root = await publish(client, worker_ctx, owner, llama, prompt="Foxes are quick.")
    person = await user_session(client)
    text = "I think foxes are the quickest animals of the whole forest, and brown."
    said = await client.post(
        f"/api/v1/posts/{root['id']}/replies", json={"text": text}, headers=person.headers
    )
    assert said.status_code == 202, said.text
    assert said.json()["status"] == "published"
    assert said.json()["author"]["kind"] == "person"
    assert said.json()["author"]["owner_username"] == person.username
    assert said.json()["depth"] == 1

    answer = await client.post(
        f"/api/v1/posts/{said.json()['id']}/replies",
        json={"model": llama["ref"], "instruction": "Answer briefly.", "max_tokens": 4},
        headers=person.headers,
    )
    assert answer.status_code == 202, answer.text
    # The same instruction as a fresh post, with no thread before it.
    alone = await client.post(
        "/api/v1/posts",
        json={"model": llama["ref"], "prompt": "Answer briefly.", "max_tokens": 4},
        headers=person.headers,
    )
    assert await run_jobs(worker_ctx) == ["published", "published"]
    reply = (await client.get(f"/api/v1/posts/{answer.json()['id']}")).json()
    fresh = (await client.get(f"/api/v1/posts/{alone.json()['id']}")).json()
    # What inference counted: the root and the person's reply came before the instruction.
    assert reply["prompt_tokens"] > fresh["prompt_tokens"] + 20
    assert reply["depth"] == 2
    assert reply["root_id"] == root["id"]

    first = await client.get(f"/api/v1/posts/{reply['id']}/thread", params={"limit": 2})
    assert first.status_code == 200, first.text
    assert [p["id"] for p in first.json()["items"]] == [root["id"], said.json()["id"]]
    rest = await client.get(
        f"/api/v1/posts/{root['id']}/thread",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
    )
    assert [p["id"] for p in rest.json()["items"]] == [reply["id"]]
    assert rest.json()["next_cursor"] is None
    counts = (await client.get(f"/api/v1/posts/{root['id']}")).json()
    assert counts["reply_count"] == 1


async def test_model_replies_stop_at_the_depth_cap(client, platform, worker_ctx, owner, llama):
    settings = platform.apps["feed"].state.feed.settings
    parent = await publish(client, worker_ctx, owner, llama)
    for _ in range(settings.max_model_reply_depth):
        parent = (
            await client.post(
                f"/api/v1/posts/{parent['id']}/replies",
                json={"text": "and?"},
                headers=owner.headers,
            )
        ).json()
    response = await client.post(
        f"/api/v1/posts/{parent['id']}/replies",
        json={"model": llama["ref"]},
        headers=owner.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "thread_too_deep"
    # A person may still answer.
    person = await client.post(
        f"/api/v1/posts/{parent['id']}/replies", json={"text": "me"}, headers=owner.headers
    )
    assert person.status_code == 202


async def test_posts_per_model_per_day_are_capped(client, platform, owner, llama, monkeypatch):
    monkeypatch.setattr(platform.apps["feed"].state.feed.settings, "max_posts_per_model_per_day", 2)
    body = {"model": llama["ref"], "prompt": "Foxes?"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/posts", json=body, headers=owner.headers) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [202, 202, 429, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["code"] == "daily_post_cap"
    assert "retry-after" in refused.headers


async def test_a_private_models_posts_are_hidden_from_others(
    client, platform, worker_ctx, owner, tiny_llama_dir
):
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="secret", visibility="private")
    post = await publish(client, worker_ctx, owner, secret)
    reply = await client.post(
        f"/api/v1/posts/{post['id']}/replies", json={"text": "mine"}, headers=owner.headers
    )
    stranger = await user_session(client)
    for path in (f"/api/v1/posts/{post['id']}", f"/api/v1/posts/{reply.json()['id']}"):
        assert (await client.get(path, headers=stranger.headers)).status_code == 404
        assert (await client.get(path)).status_code == 404
        assert (await client.get(path, headers=owner.headers)).status_code == 200
    thread = await client.get(f"/api/v1/posts/{post['id']}/thread", headers=stranger.headers)
    assert thread.status_code == 404
    like = await client.post(f"/api/v1/posts/{post['id']}/like", headers=stranger.headers)
    assert like.status_code == 404
    answer = await client.post(
        f"/api/v1/posts/{post['id']}/replies", json={"text": "hi"}, headers=stranger.headers
    )
    assert answer.status_code == 404
    new = await client.post(
        "/api/v1/posts", json={"model": secret["ref"], "prompt": "x"}, headers=stranger.headers
    )
    assert new.status_code == 404


async def test_delete_leaves_a_placeholder_when_the_post_has_replies(
    client, platform, worker_ctx, owner, llama
):
    post = await publish(client, worker_ctx, owner, llama)
    person = await user_session(client)
    reply = await client.post(
        f"/api/v1/posts/{post['id']}/replies", json={"text": "hi"}, headers=person.headers
    )
    refused = await client.delete(f"/api/v1/posts/{post['id']}", headers=person.headers)
    assert refused.status_code == 403

    assert (
        await client.delete(f"/api/v1/posts/{post['id']}", headers=owner.headers)
    ).status_code == 204
    placeholder = (await client.get(f"/api/v1/posts/{post['id']}")).json()
    assert placeholder["deleted"] is True
    assert placeholder["content"] is None
    assert placeholder["prompt"] is None
    thread = (await client.get(f"/api/v1/posts/{reply.json()['id']}/thread")).json()
    assert [p["id"] for p in thread["items"]] == [post["id"], reply.json()["id"]]

    # A leaf goes entirely, by its author or an admin.
    admin = await admin_session(client, platform)
    gone = await client.delete(f"/api/v1/posts/{reply.json()['id']}", headers=admin.headers)
    assert gone.status_code == 204
    assert (await client.get(f"/api/v1/posts/{reply.json()['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "a/b"}, "prompt"),
        ({"model": "a/b", "prompt": ""}, "prompt"),
        ({"model": "a/b", "prompt": "x", "temperature": 5.0}, "temperature"),
        ({"model": "a/b", "prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"model": "a/b", "prompt": "x", "seed": -1}, "seed"),
        ({"model": "a/b", "prompt": "x", "logit_bias": {}}, "logit_bias"),
    ],
)
async def test_bad_post_bodies_are_422(client, owner, body, field):
    response = await client.post("/api/v1/posts", json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert field in response.text


async def test_every_bad_request_gets_its_4xx(client, worker_ctx, owner, llama):
    assert (
        await client.post("/api/v1/posts", json={"model": llama["ref"], "prompt": "x"})
    ).status_code == 401
    unknown = await client.post(
        "/api/v1/posts", json={"model": "nobody/nothing", "prompt": "x"}, headers=owner.headers
    )
    assert unknown.status_code == 404
    assert (await client.get(f"/api/v1/posts/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/api/v1/posts/not-a-uuid")).status_code == 422
    bad_key = await client.post(
        "/api/v1/posts",
        json={"model": llama["ref"], "prompt": "x"},
        headers={**owner.headers, "Idempotency-Key": "no spaces allowed"},
    )
    assert bad_key.status_code == 422

    generating = await client.post(
        "/api/v1/posts", json={"model": llama["ref"], "prompt": "x"}, headers=owner.headers
    )
    pending = generating.json()["id"]
    early = await client.post(
        f"/api/v1/posts/{pending}/replies", json={"text": "hi"}, headers=owner.headers
    )
    assert early.status_code == 409
    assert early.json()["code"] == "post_not_published"
    await run_jobs(worker_ctx)
    for body in (
        {},
        {"model": llama["ref"], "text": "both"},
        {"text": "hi", "instruction": "no"},
        {"text": "hi", "temperature": 0.5},
        {"text": ""},
    ):
        response = await client.post(
            f"/api/v1/posts/{pending}/replies", json=body, headers=owner.headers
        )
        assert response.status_code == 422, (body, response.text)
    missing = await client.post(
        f"/api/v1/posts/{uuid.uuid4()}/replies", json={"text": "hi"}, headers=owner.headers
    )
    assert missing.status_code == 404
    cursor = await client.get(f"/api/v1/posts/{pending}/thread", params={"cursor": "!!"})
    assert cursor.status_code == 422
    forged = await client.get(f"/api/v1/posts/{pending}/thread", params={"cursor": "WzFd"})
    assert forged.status_code == 422
    assert forged.json()["code"] == "invalid_cursor"


async def test_a_post_fails_with_a_reason_when_inference_stays_unreachable(
    client, worker_ctx, owner, llama
):
    response = await client.post(
        "/api/v1/posts", json={"model": llama["ref"], "prompt": "Foxes?"}, headers=owner.headers
    )
    (job,) = await worker_ctx["redis"].queued_jobs(queue_name="llmnet:feed")
    feed = worker_ctx["feed"]
    unreachable = InferenceClient("http://127.0.0.1:9", "unused-token-0123456789", timeout=2)
    ctx = {**worker_ctx, "feed": dataclasses.replace(feed, inference=unreachable)}
    try:
        with pytest.raises(Retry):
            await generate_post({**ctx, "job_try": 1}, *job.args)
        pending = (await client.get(f"/api/v1/posts/{response.json()['id']}")).json()
        assert pending["status"] == "generating"
        assert await generate_post({**ctx, "job_try": MAX_TRIES}, *job.args) == "failed"
    finally:
        await unreachable.aclose()
    post = (await client.get(f"/api/v1/posts/{response.json()['id']}")).json()
    assert post["status"] == "failed"
    assert "could not be reached" in post["failure_reason"]
