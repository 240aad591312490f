"""The usage ledger through the gateway: rows and events per completion, pages, quotas."""

from __future__ import annotations

import json

from tests.factories import admin_session, user_session

PROMPT = "the quick brown fox"


async def _complete(client, headers, **body):
    return await client.post("/v1/completions", json={"max_tokens": 8, **body}, headers=headers)


async def test_usage_ledger_events_and_quota(client, platform, owner, llama):
    for _ in range(2):
        await _complete(client, owner.headers, model=llama["ref"], prompt=PROMPT)
    ledger = (await client.get("/api/v1/usage", headers=owner.headers)).json()
    assert ledger["totals"]["requests"] == 2
    assert {r["status"] for r in ledger["items"]} == {"completed"}
    assert ledger["items"][0]["model_ref"] == llama["ref"]
    other = await user_session(client)
    assert (await client.get("/api/v1/usage", headers=other.headers)).json()["items"] == []
    admin = await admin_session(client, platform)
    everyone = (await client.get("/api/v1/usage", headers=admin.headers)).json()
    assert everyone["totals"]["requests"] == 2

    events = await platform.redis.xrange("llmnet:events:model")
    usage_events = [json.loads(f["payload"]) for _, f in events if f["type"] == "model.usage"]
    assert len(usage_events) == 2
    assert usage_events[0]["model_id"] == llama["id"]

    used = ledger["totals"]["prompt_tokens"] + ledger["totals"]["completion_tokens"]
    set_quota = await client.put(
        f"/api/v1/usage/quotas/{owner.id}", json={"daily_tokens": used}, headers=admin.headers
    )
    assert set_quota.status_code == 200
    assert set_quota.json()["used_today"] == used
    spent = await _complete(client, owner.headers, model=llama["ref"], prompt=PROMPT)
    assert spent.status_code == 429
    assert spent.json()["error"]["code"] == "quota_exceeded"
    assert spent.json()["error"]["type"] == "rate_limit_error"
    assert "retry-after" in spent.headers
    not_admin = await client.put(
        f"/api/v1/usage/quotas/{owner.id}", json={"daily_tokens": 10**9}, headers=owner.headers
    )
    assert not_admin.status_code == 403


async def test_the_ledger_pages_newest_first(client, owner, llama):
    for _ in range(3):
        done = await _complete(
            client, owner.headers, model=llama["ref"], prompt=PROMPT, max_tokens=2
        )
        assert done.status_code == 200, done.text
    first = (await client.get("/api/v1/usage", params={"limit": 2}, headers=owner.headers)).json()
    assert len(first["items"]) == 2
    assert first["totals"]["requests"] == 3
    assert first["next_cursor"]
    second = (
        await client.get(
            "/api/v1/usage",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=owner.headers,
        )
    ).json()
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None
    ids = [r["id"] for r in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)
    assert {r["endpoint"] for r in first["items"]} == {"completions"}
    assert {r["source"] for r in first["items"]} == {"local"}
