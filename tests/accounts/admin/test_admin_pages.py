"""What the admin pages read: users with their verification state, the audit trail of one
user with usernames resolved, and another user's token quota."""

from __future__ import annotations

from tests.factories import admin_session, user_session


async def test_admin_user_list_says_whether_the_email_is_verified(client, platform):
    admin = await admin_session(client, platform)
    await user_session(client, "unverified")
    response = await client.get(
        "/api/v1/admin/users", params={"q": "unverified"}, headers=admin.headers
    )
    assert response.status_code == 200
    (user,) = response.json()["items"]
    assert user["email_verified"] is False


async def test_the_audit_trail_of_one_user_names_actor_and_target(client, platform):
    admin = await admin_session(client, platform)
    target = await user_session(client, "audited")
    await user_session(client, "bystander")
    ban = await client.post(
        f"/api/v1/admin/users/{target.id}/ban", json={"reason": "spam"}, headers=admin.headers
    )
    assert ban.status_code == 200

    response = await client.get(
        "/api/v1/admin/audit", params={"user_id": target.id}, headers=admin.headers
    )
    assert response.status_code == 200
    records = response.json()["items"]
    assert [r["action"] for r in records] == ["user.banned", "auth.login", "user.registered"]
    banned = records[0]
    assert banned["actor_username"] == admin.username
    assert banned["target_username"] == "audited"
    assert {r["target_id"] for r in records} == {target.id}


async def test_the_audit_filter_refuses_a_bad_user_id(client, platform):
    admin = await admin_session(client, platform)
    response = await client.get(
        "/api/v1/admin/audit", params={"user_id": "nope"}, headers=admin.headers
    )
    assert response.status_code == 422
