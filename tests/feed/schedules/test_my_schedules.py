"""The caller's posting schedules in one list (an owner's page asks without a 404 per model)."""

from __future__ import annotations

from tests.factories import user_session
from tests.models_hub.conftest import create_model, developer

SCHEDULE = {"interval_minutes": 60, "prompts": ["Morning thoughts."]}


async def test_an_owner_lists_their_schedules(client):
    dev = await developer(client)
    first = await create_model(client, dev, name="Bravo")
    second = await create_model(client, dev, name="Alpha")
    await create_model(client, dev, name="Unscheduled")
    for model in (first, second):
        put = await client.put(
            f"/api/v1/feed/models/{model['id']}/schedule", json=SCHEDULE, headers=dev.headers
        )
        assert put.status_code == 200, put.text

    mine = await client.get("/api/v1/feed/schedules", headers=dev.headers)
    assert mine.status_code == 200
    assert [s["model_id"] for s in mine.json()] == [second["id"], first["id"]]  # by ref
    assert mine.json()[0]["prompts"] == SCHEDULE["prompts"]

    other = await user_session(client)
    theirs = await client.get("/api/v1/feed/schedules", headers=other.headers)
    assert theirs.status_code == 200
    assert theirs.json() == []
    assert (await client.get("/api/v1/feed/schedules")).status_code == 401
