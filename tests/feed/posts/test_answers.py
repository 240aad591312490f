"""Several models answer one post side by side: one request, one reply job per model."""

from __future__ import annotations

from tests.feed.conftest import publish, ready_model, run_jobs


async def test_several_models_answer_one_post(
    client, platform, worker_ctx, owner, llama, tiny_llama_dir
):
    other = await ready_model(platform, owner, tiny_llama_dir, slug="other")
    post = await publish(client, worker_ctx, owner, llama)
    body = {
        "models": [llama["ref"], other["ref"]],
        "instruction": "Answer briefly.",
        "max_tokens": 4,
    }
    response = await client.post(
        f"/api/v1/posts/{post['id']}/answers",
        json=body,
        headers={**owner.headers, "Idempotency-Key": "answers-1"},
    )
    assert response.status_code == 202, response.text
    replies = response.json()["items"]
    assert [r["author"]["model_ref"] for r in replies] == [llama["ref"], other["ref"]]
    assert all(r["parent_id"] == post["id"] and r["status"] == "generating" for r in replies)

    again = await client.post(
        f"/api/v1/posts/{post['id']}/answers",
        json=body,
        headers={**owner.headers, "Idempotency-Key": "answers-1"},
    )
    assert [r["id"] for r in again.json()["items"]] == [r["id"] for r in replies]
    assert await run_jobs(worker_ctx) == ["published", "published"]
    assert (await client.get(f"/api/v1/posts/{post['id']}")).json()["reply_count"] == 2


async def test_answers_refuse_repeated_or_unknown_models(client, worker_ctx, owner, llama):
    post = await publish(client, worker_ctx, owner, llama)
    path = f"/api/v1/posts/{post['id']}/answers"
    twice = await client.post(path, json={"models": [llama["ref"]] * 2}, headers=owner.headers)
    assert twice.status_code == 422
    assert "once" in twice.text
    unknown = await client.post(
        path, json={"models": [llama["ref"], "owner/nope"]}, headers=owner.headers
    )
    assert unknown.status_code == 404
    assert await run_jobs(worker_ctx) == []  # nothing half-made
