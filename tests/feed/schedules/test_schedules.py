"""Posting schedules: set by the model's owner, run by the worker's cron within the window and
the model's daily cap."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from services.feed.models import Post, PostingSchedule
from services.feed.schedules.tasks import run_schedules
from shared.db import session_scope, utcnow
from tests.factories import user_session
from tests.feed.conftest import run_jobs

SCHEDULE = {"interval_minutes": 60, "prompts": ["Morning thoughts.", "Evening thoughts."]}


async def _due_now(platform) -> None:
    async with session_scope(platform.sessionmaker) as session:
        await session.execute(
            update(PostingSchedule).values(next_run_at=utcnow() - timedelta(seconds=1))
        )


async def _prompts(platform) -> list[str | None]:
    async with session_scope(platform.sessionmaker) as session:
        posts = await session.scalars(select(Post).order_by(Post.created_at))
        return [p.prompt for p in posts]


async def test_an_owner_sets_reads_and_deletes_a_schedule(client, owner, llama):
    path = f"/api/v1/feed/models/{llama['id']}/schedule"
    put = await client.put(path, json=SCHEDULE, headers=owner.headers)
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["prompts"] == SCHEDULE["prompts"]
    assert body["window_start_hour"] == 0
    assert body["window_end_hour"] == 24
    assert body["enabled"] is True
    assert body["last_run_at"] is None

    assert (await client.get(path, headers=owner.headers)).json()["id"] == body["id"]
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    missing = await client.get(path, headers=owner.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "schedule_not_found"


async def test_only_the_owner_may_schedule_and_bad_schedules_are_refused(client, owner, llama):
    path = f"/api/v1/feed/models/{llama['id']}/schedule"
    other = await user_session(client)
    refused = await client.put(path, json=SCHEDULE, headers=other.headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_model_owner"
    short = await client.put(path, json={**SCHEDULE, "interval_minutes": 1}, headers=owner.headers)
    assert short.status_code == 422
    assert short.json()["code"] == "interval_too_short"
    empty = await client.put(path, json={**SCHEDULE, "prompts": []}, headers=owner.headers)
    assert empty.status_code == 422
    window = {**SCHEDULE, "window_start_hour": 5, "window_end_hour": 5}
    assert (await client.put(path, json=window, headers=owner.headers)).status_code == 422
    missing = await client.put(
        f"/api/v1/feed/models/{uuid.uuid4()}/schedule", json=SCHEDULE, headers=owner.headers
    )
    assert missing.status_code == 404


async def test_the_cron_posts_the_next_prompt_when_due(client, platform, worker_ctx, owner, llama):
    path = f"/api/v1/feed/models/{llama['id']}/schedule"
    assert (await client.put(path, json=SCHEDULE, headers=owner.headers)).status_code == 200
    assert await run_schedules(worker_ctx) == {}  # not due yet

    await _due_now(platform)
    assert await run_schedules(worker_ctx) == {"posted": 1}
    assert await run_jobs(worker_ctx) == ["published"]
    await _due_now(platform)
    assert await run_schedules(worker_ctx) == {"posted": 1}
    assert await _prompts(platform) == ["Morning thoughts.", "Evening thoughts."]

    schedule = (await client.get(path, headers=owner.headers)).json()
    assert schedule["last_run_at"] is not None
    assert schedule["next_run_at"] > schedule["last_run_at"]


async def test_the_cron_waits_for_the_window(client, platform, worker_ctx, owner, llama):
    hour = utcnow().hour
    window = {
        **SCHEDULE,
        "window_start_hour": (hour + 2) % 24,
        "window_end_hour": (hour + 2) % 24 + 1,
    }
    path = f"/api/v1/feed/models/{llama['id']}/schedule"
    assert (await client.put(path, json=window, headers=owner.headers)).status_code == 200
    await _due_now(platform)
    assert await run_schedules(worker_ctx) == {"outside_window": 1}
    assert await _prompts(platform) == []
    after = (await client.get(path, headers=owner.headers)).json()
    assert after["next_run_at"] > utcnow().isoformat()


async def test_the_cron_respects_the_daily_cap(
    client, platform, worker_ctx, owner, llama, monkeypatch
):
    monkeypatch.setattr(worker_ctx["feed"].settings, "max_posts_per_model_per_day", 1)
    path = f"/api/v1/feed/models/{llama['id']}/schedule"
    assert (await client.put(path, json=SCHEDULE, headers=owner.headers)).status_code == 200
    for expected in ({"posted": 1}, {"failed": 1}):
        await _due_now(platform)
        assert await run_schedules(worker_ctx) == expected
    assert len(await _prompts(platform)) == 1
    schedule = (await client.get(path, headers=owner.headers)).json()
    assert "24 hours" in schedule["last_error"]
