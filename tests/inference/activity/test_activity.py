"""Activity records through the gateway: recording on/off, listing with filters, deleting,
and admins' view across users."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from services.inference.activity.service import activity_service
from services.inference.models import ActivityAction, ActivityRecord
from shared.db import session_scope
from tests.factories import admin_session, user_session

BASE = "/api/v1/activity"


async def _record(platform, user, action, *, model_id=None, at=None):
    async with session_scope(platform.sessionmaker) as session:
        await activity_service.record(
            session, uuid.UUID(user.id), action, model_id=model_id, details={"n": 1}
        )
        if at is not None:
            await session.execute(
                update(ActivityRecord)
                .where(ActivityRecord.user_id == uuid.UUID(user.id))
                .where(ActivityRecord.created_at > datetime.now(UTC) - timedelta(minutes=5))
                .values(created_at=at)
            )


async def test_recording_is_on_by_default(client):
    user = await user_session(client)
    response = await client.get(f"{BASE}/settings", headers=user.headers)
    assert response.status_code == 200
    assert response.json() == {"recording": True}


async def test_records_are_listed_newest_first(client, platform):
    user = await user_session(client)
    await _record(platform, user, ActivityAction.CONVERSATION_CREATED)
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    response = await client.get(BASE, headers=user.headers)
    assert response.status_code == 200
    actions = [r["action"] for r in response.json()["items"]]
    assert actions == ["message.sent", "conversation.created"]
    assert response.json()["items"][0]["details"] == {"n": 1}


async def test_turning_recording_off_stops_recording(client, platform):
    user = await user_session(client)
    off = await client.put(f"{BASE}/settings", json={"recording": False}, headers=user.headers)
    assert off.status_code == 200
    assert off.json() == {"recording": False}
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    assert (await client.get(BASE, headers=user.headers)).json()["items"] == []
    await client.put(f"{BASE}/settings", json={"recording": True}, headers=user.headers)
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    assert len((await client.get(BASE, headers=user.headers)).json()["items"]) == 1


async def test_settings_refuse_a_non_boolean(client):
    user = await user_session(client)
    response = await client.put(f"{BASE}/settings", json={"recording": "no"}, headers=user.headers)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "recording"


async def test_filter_by_action_and_model(client, platform):
    user = await user_session(client)
    model_a, model_b = uuid.uuid4(), uuid.uuid4()
    await _record(platform, user, ActivityAction.MESSAGE_SENT, model_id=model_a)
    await _record(platform, user, ActivityAction.MESSAGE_SENT, model_id=model_b)
    await _record(platform, user, ActivityAction.MODEL_SWITCHED, model_id=model_a)
    by_action = await client.get(BASE, params={"action": "message.sent"}, headers=user.headers)
    assert by_action.status_code == 200
    assert len(by_action.json()["items"]) == 2
    by_model = await client.get(BASE, params={"model_id": str(model_a)}, headers=user.headers)
    assert {r["action"] for r in by_model.json()["items"]} == {"message.sent", "model.switched"}


async def test_filter_by_date_range(client, platform):
    user = await user_session(client)
    old = datetime(2026, 1, 10, tzinfo=UTC)
    await _record(platform, user, ActivityAction.CONVERSATION_CREATED, at=old)
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    response = await client.get(
        BASE,
        params={"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"},
        headers=user.headers,
    )
    assert response.status_code == 200
    assert [r["action"] for r in response.json()["items"]] == ["conversation.created"]


async def test_inverted_date_range_is_empty(client, platform):
    user = await user_session(client)
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    response = await client.get(
        BASE,
        params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        headers=user.headers,
    )
    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_bad_date_is_422(client):
    user = await user_session(client)
    response = await client.get(BASE, params={"since": "yesterday"}, headers=user.headers)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "since"


async def test_non_numeric_record_id_is_refused(client):
    user = await user_session(client)
    response = await client.delete(f"{BASE}/abc", headers=user.headers)
    assert response.status_code in {404, 405}


async def test_unknown_action_filter_is_422(client):
    user = await user_session(client)
    response = await client.get(BASE, params={"action": "nope"}, headers=user.headers)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "action"


async def test_cursor_pagination(client, platform):
    user = await user_session(client)
    for _ in range(3):
        await _record(platform, user, ActivityAction.MESSAGE_SENT)
    first = (await client.get(BASE, params={"limit": 2}, headers=user.headers)).json()
    assert len(first["items"]) == 2
    second = (
        await client.get(
            BASE, params={"limit": 2, "cursor": first["next_cursor"]}, headers=user.headers
        )
    ).json()
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None
    ids = [r["id"] for r in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)


async def test_others_see_none_of_your_records(client, platform):
    user = await user_session(client)
    other = await user_session(client)
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    assert (await client.get(BASE, headers=other.headers)).json()["items"] == []


async def test_delete_one_record(client, platform):
    user = await user_session(client)
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    await _record(platform, user, ActivityAction.MESSAGE_REGENERATED)
    items = (await client.get(BASE, headers=user.headers)).json()["items"]
    response = await client.delete(f"{BASE}/{items[0]['id']}", headers=user.headers)
    assert response.status_code == 204
    left = (await client.get(BASE, headers=user.headers)).json()["items"]
    assert [r["id"] for r in left] == [items[1]["id"]]


async def test_deleting_another_users_record_is_404(client, platform):
    user = await user_session(client)
    other = await user_session(client)
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    record_id = (await client.get(BASE, headers=user.headers)).json()["items"][0]["id"]
    response = await client.delete(f"{BASE}/{record_id}", headers=other.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "activity_record_not_found"
    assert len((await client.get(BASE, headers=user.headers)).json()["items"]) == 1


async def test_delete_all_records(client, platform):
    user = await user_session(client)
    other = await user_session(client)
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    await _record(platform, user, ActivityAction.MESSAGE_SENT)
    await _record(platform, other, ActivityAction.MESSAGE_SENT)
    response = await client.delete(BASE, headers=user.headers)
    assert response.status_code == 200
    assert response.json() == {"deleted": 2}
    assert (await client.get(BASE, headers=user.headers)).json()["items"] == []
    assert len((await client.get(BASE, headers=other.headers)).json()["items"]) == 1


async def test_admin_lists_across_users_with_filters(client, platform):
    alice = await user_session(client)
    bob = await user_session(client)
    model = uuid.uuid4()
    await _record(platform, alice, ActivityAction.MESSAGE_SENT, model_id=model)
    await _record(platform, bob, ActivityAction.CONVERSATION_DELETED)
    admin = await admin_session(client, platform)
    everyone = await client.get("/api/v1/admin/activity", headers=admin.headers)
    assert everyone.status_code == 200
    assert {r["user_id"] for r in everyone.json()["items"]} == {alice.id, bob.id}
    by_user = await client.get(
        "/api/v1/admin/activity", params={"user_id": bob.id}, headers=admin.headers
    )
    assert [r["action"] for r in by_user.json()["items"]] == ["conversation.deleted"]
    by_model = await client.get(
        "/api/v1/admin/activity",
        params={"model_id": str(model), "action": "message.sent"},
        headers=admin.headers,
    )
    assert [r["user_id"] for r in by_model.json()["items"]] == [alice.id]


async def test_admin_activity_is_admins_only(client):
    user = await user_session(client)
    response = await client.get("/api/v1/admin/activity", headers=user.headers)
    assert response.status_code == 403
