"""Admins read any user's daily token quota; others may not."""

from __future__ import annotations

from tests.factories import admin_session, user_session


async def test_an_admin_reads_and_sets_a_users_quota(client, platform):
    admin = await admin_session(client, platform)
    user = await user_session(client)
    url = f"/api/v1/usage/quotas/{user.id}"

    default = await client.get(url, headers=admin.headers)
    assert default.status_code == 200
    assert default.json() == {"user_id": user.id, "daily_tokens": None, "used_today": 0}

    assert (
        await client.put(url, json={"daily_tokens": 500}, headers=admin.headers)
    ).status_code == 200
    after = await client.get(url, headers=admin.headers)
    assert after.status_code == 200
    assert after.json()["daily_tokens"] == 500


async def test_others_may_not_read_a_users_quota(client):
    user = await user_session(client)
    other = await user_session(client)
    response = await client.get(f"/api/v1/usage/quotas/{other.id}", headers=user.headers)
    assert response.status_code == 403
