"""Posting schedules from a prompt template: checked when saved (the owner's template, its
variables rendering), rendered by the inference service at each run."""

from __future__ import annotations

import uuid

from services.feed.schedules.tasks import run_schedules
from services.inference.prompt_templates.builtin import BUILTIN_TEMPLATES
from tests.factories import user_session
from tests.feed.conftest import run_jobs
from tests.feed.schedules.test_schedules import _due_now, _prompts

ROLE = next(t for t in BUILTIN_TEMPLATES if t.name == "role-based")


async def _template(client, user, body: str = "Write about {{ topic }} in {{ style }}.") -> str:
    response = await client.post(
        "/api/v1/prompt-templates",
        json={"name": f"t-{uuid.uuid4().hex[:8]}", "body": body},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_template_schedule_posts_the_rendered_prompt_at_each_run(
    client, platform, worker_ctx, owner, llama
):
    template = await _template(client, owner)
    path = f"/api/v1/feed/models/{llama['id']}/schedule"
    schedule = {
        "interval_minutes": 60,
        "template_id": template,
        "variables": {"topic": "foxes", "style": "haiku"},
    }
    put = await client.put(path, json=schedule, headers=owner.headers)
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["template_id"] == template
    assert body["variables"] == {"topic": "foxes", "style": "haiku"}
    assert body["prompts"] is None

    await _due_now(platform)
    assert await run_schedules(worker_ctx) == {"posted": 1}
    assert await run_jobs(worker_ctx) == ["published"]
    # The template is rendered afresh at each run: an edit shows in the next post.
    edit = await client.patch(
        f"/api/v1/prompt-templates/{template}",
        json={"body": "Tell a story about {{ topic }} as a {{ style }}."},
        headers=owner.headers,
    )
    assert edit.status_code == 200, edit.text
    await _due_now(platform)
    assert await run_schedules(worker_ctx) == {"posted": 1}
    assert await _prompts(platform) == [
        "Write about foxes in haiku.",
        "Tell a story about foxes as a haiku.",
    ]


async def test_a_builtin_template_may_be_used(client, platform, worker_ctx, owner, llama):
    path = f"/api/v1/feed/models/{llama['id']}/schedule"
    variables = {"role": "a sailor", "context": "A storm.", "task": "Describe it."}
    put = await client.put(
        path,
        json={"interval_minutes": 60, "template_id": str(ROLE.id), "variables": variables},
        headers=owner.headers,
    )
    assert put.status_code == 200, put.text
    await _due_now(platform)
    assert await run_schedules(worker_ctx) == {"posted": 1}
    [prompt] = await _prompts(platform)
    assert prompt is not None
    assert "a sailor" in prompt
    assert "Describe it." in prompt


async def test_template_schedules_are_checked_when_saved(client, owner, llama):
    path = f"/api/v1/feed/models/{llama['id']}/schedule"
    template = await _template(client, owner)
    base = {"interval_minutes": 60}

    missing = await client.put(
        path,
        json={**base, "template_id": template, "variables": {"topic": "foxes"}},
        headers=owner.headers,
    )
    assert missing.status_code == 422
    assert "style" in missing.json()["detail"]
    unknown = await client.put(
        path,
        json={
            **base,
            "template_id": template,
            "variables": {"topic": "foxes", "style": "haiku", "mood": "sad"},
        },
        headers=owner.headers,
    )
    assert unknown.status_code == 422
    assert "mood" in unknown.json()["detail"]

    both = await client.put(
        path,
        json={**base, "prompts": ["Hi."], "template_id": template, "variables": {}},
        headers=owner.headers,
    )
    assert both.status_code == 422
    assert "not both" in both.json()["detail"]
    neither = await client.put(path, json=base, headers=owner.headers)
    assert neither.status_code == 422
    stray = await client.put(
        path, json={**base, "prompts": ["Hi."], "variables": {"topic": "x"}}, headers=owner.headers
    )
    assert stray.status_code == 422
    assert "template_id" in stray.json()["detail"]

    # Someone else's template is not the owner's to use: 404, as the template API answers.
    other = await user_session(client)
    theirs = await _template(client, other)
    hidden = await client.put(
        path,
        json={**base, "template_id": theirs, "variables": {"topic": "a", "style": "b"}},
        headers=owner.headers,
    )
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "prompt_template_not_found"
    missing_schedule = await client.get(path, headers=owner.headers)
    assert missing_schedule.status_code == 404  # nothing was saved


async def test_a_deleted_template_disables_the_schedule(client, platform, worker_ctx, owner, llama):
    template = await _template(client, owner)
    path = f"/api/v1/feed/models/{llama['id']}/schedule"
    schedule = {
        "interval_minutes": 60,
        "template_id": template,
        "variables": {"topic": "foxes", "style": "haiku"},
    }
    assert (await client.put(path, json=schedule, headers=owner.headers)).status_code == 200
    deleted = await client.delete(f"/api/v1/prompt-templates/{template}", headers=owner.headers)
    assert deleted.status_code == 204
    await _due_now(platform)
    assert await run_schedules(worker_ctx) == {"disabled": 1}
    after = (await client.get(path, headers=owner.headers)).json()
    assert after["enabled"] is False
    assert "template" in after["last_error"]
    assert await _prompts(platform) == []
