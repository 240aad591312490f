"""A model's use per day: requests, tokens and latency percentiles, for whoever may use it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.inference.models import UsageRecord
from shared.db import session_scope
from tests.factories import user_session
from tests.models_hub.conftest import create_model, developer


def _row(model: dict, user_id: str, at: datetime, latency: float, tokens: int) -> UsageRecord:
    return UsageRecord(
        user_id=uuid.UUID(user_id),
        model_id=uuid.UUID(model["id"]),
        model_ref=model["ref"],
        source="local",
        endpoint="chat.completions",
        prompt_tokens=10,
        completion_tokens=tokens,
        latency_ms=latency,
        status="completed",
        created_at=at,
    )


async def test_a_models_use_per_day(client, platform):
    dev = await developer(client)
    model = await create_model(client, dev)
    other = await create_model(client, dev, name="Other")
    now = datetime.now(UTC)
    two_days_ago = now - timedelta(days=2)
    async with session_scope(platform.sessionmaker) as session:
        for latency in (100.0, 200.0, 300.0, 400.0):
            session.add(_row(model, dev.id, two_days_ago, latency, 5))
        session.add(_row(model, dev.id, now, 50.0, 7))
        session.add(_row(model, dev.id, now - timedelta(days=40), 9.0, 1))  # out of range
        session.add(_row(other, dev.id, now, 1.0, 100))  # another model

    reader = await user_session(client)
    response = await client.get(
        f"/api/v1/usage/models/{model['id']}/daily", params={"days": 7}, headers=reader.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_ref"] == model["ref"]
    days = body["days"]
    assert [d["day"] for d in days] == [
        (now - timedelta(days=6 - i)).date().isoformat() for i in range(7)
    ]
    busy = days[4]
    assert busy["requests"] == 4
    assert busy["prompt_tokens"] == 40
    assert busy["completion_tokens"] == 20
    assert busy["p50_latency_ms"] == 250.0
    assert busy["p95_latency_ms"] == 385.0
    assert days[6]["requests"] == 1
    assert days[6]["completion_tokens"] == 7
    assert days[0] == {
        "day": days[0]["day"],
        "requests": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "p50_latency_ms": None,
        "p95_latency_ms": None,
    }


async def test_a_private_models_series_is_hidden_from_others(client):
    dev = await developer(client)
    model = await create_model(client, dev, visibility="private")
    stranger = await user_session(client)
    path = f"/api/v1/usage/models/{model['id']}/daily"
    hidden = await client.get(path, headers=stranger.headers)
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "model_not_found"
    mine = await client.get(path, headers=dev.headers)
    assert mine.status_code == 200
    assert len(mine.json()["days"]) == 30
    assert (await client.get(path, params={"days": 0}, headers=dev.headers)).status_code == 422
