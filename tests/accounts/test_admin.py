"""Admin search, bans that take effect at once, roles, the audit trail, create-admin."""

from __future__ import annotations

import io

from shared.cli import main as llmnet
from tests.factories import admin_session, api_key, login, user_session


async def test_non_admins_get_403(client):
    user = await user_session(client)
    response = await client.get("/api/v1/admin/users", headers=user.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


async def test_admin_searches_users(client, platform):
    admin = await admin_session(client, platform)
    await user_session(client, "findme")
    await user_session(client, "other")
    response = await client.get("/api/v1/admin/users", params={"q": "FIND"}, headers=admin.headers)
    assert response.status_code == 200
    assert [u["username"] for u in response.json()["items"]] == ["findme"]


async def test_ban_locks_out_tokens_and_keys_at_once_and_unban_restores(client, platform):
    admin = await admin_session(client, platform)
    target = await user_session(client, "troll")
    key = await api_key(client, target)
    key_headers = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get("/api/v1/users/me", headers=key_headers)).status_code == 200

    ban = await client.post(
        f"/api/v1/admin/users/{target.id}/ban", json={"reason": "spam"}, headers=admin.headers
    )
    assert ban.status_code == 200
    assert ban.json()["is_banned"] is True

    for headers in (target.headers, key_headers):
        response = await client.get("/api/v1/users/me", headers=headers)
        assert response.status_code == 403
        assert response.json()["code"] == "account_banned"
    relogin = await client.post(
        "/api/v1/auth/login", json={"username": "troll", "password": "correct-horse-42"}
    )
    assert relogin.status_code == 403
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": target.refresh_token}
    )
    assert refresh.status_code == 401
    assert (await client.get("/api/v1/users/troll")).status_code == 404

    unban = await client.post(f"/api/v1/admin/users/{target.id}/unban", headers=admin.headers)
    assert unban.status_code == 200
    tokens = await login(client, "troll")
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200

    audit = await client.get(
        "/api/v1/admin/audit", params={"action": "user.banned"}, headers=admin.headers
    )
    assert audit.status_code == 200
    (record,) = audit.json()["items"]
    assert record["target_id"] == target.id
    assert record["actor_id"] == admin.id
    assert record["details"] == {"reason": "spam"}


async def test_admin_cannot_ban_themselves_or_unknown_users(client, platform):
    admin = await admin_session(client, platform)
    me = await client.post(
        f"/api/v1/admin/users/{admin.id}/ban", json={"reason": "x"}, headers=admin.headers
    )
    assert me.status_code == 400
    ghost = await client.post(
        "/api/v1/admin/users/00000000-0000-0000-0000-000000000000/ban",
        json={"reason": "x"},
        headers=admin.headers,
    )
    assert ghost.status_code == 404
    not_uuid = await client.post(
        "/api/v1/admin/users/nope/ban", json={"reason": "x"}, headers=admin.headers
    )
    assert not_uuid.status_code == 422


async def test_role_change_applies_to_new_tokens(client, platform):
    admin = await admin_session(client, platform)
    user = await user_session(client, "promoted")
    response = await client.put(
        f"/api/v1/admin/users/{user.id}/role", json={"role": "admin"}, headers=admin.headers
    )
    assert response.status_code == 200
    tokens = await login(client, "promoted")
    listing = await client.get(
        "/api/v1/admin/users", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert listing.status_code == 200


async def test_create_admin_command_creates_a_new_admin(client, platform, monkeypatch):
    common = platform.common
    monkeypatch.setenv("DATABASE_URL", common["database_url"])
    monkeypatch.setenv("REDIS_URL", common["redis_url"])
    monkeypatch.setenv("INTERNAL_TOKEN", common["internal_token"])
    monkeypatch.setenv("SERVICE_TOKEN", common["service_token"])
    monkeypatch.setenv("ACCOUNTS_JWT_PRIVATE_KEY_FILE", str(platform.jwt_key_file))
    monkeypatch.setattr("sys.stdin", io.StringIO("root-password-123\n"))
    import asyncio

    code = await asyncio.to_thread(
        llmnet, ["create-admin", "rootadmin", "--email", "root@example.com", "--password-stdin"]
    )
    assert code == 0
    tokens = await login(client, "rootadmin", "root-password-123")
    listing = await client.get(
        "/api/v1/admin/users", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert listing.status_code == 200
