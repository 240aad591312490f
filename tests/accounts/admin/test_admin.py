"""Admin search, bans that take effect at once, roles, the audit trail."""

from __future__ import annotations

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


async def test_admin_search_takes_like_wildcards_literally(client, platform):
    admin = await admin_session(client, platform)
    await user_session(client, "under_score")
    await user_session(client, "underxscore")
    for q, expected in (("r_s", ["under_score"]), ("%", []), ("\\", [])):
        response = await client.get("/api/v1/admin/users", params={"q": q}, headers=admin.headers)
        assert response.status_code == 200
        assert [u["username"] for u in response.json()["items"]] == expected, q


async def test_admin_user_list_pages_by_username(client, platform):
    admin = await admin_session(client, platform)
    for name in ("page_a", "page_b", "page_c"):
        await user_session(client, name)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get("/api/v1/admin/users", params=params, headers=admin.headers)
        assert page.status_code == 200
        seen += [u["username"] for u in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted([admin.username, "page_a", "page_b", "page_c"])


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


async def test_audit_trail_pages_newest_first(client, platform):
    admin = await admin_session(client, platform)
    for _ in range(2):
        await user_session(client)
    ids: list[int] = []
    cursor = None
    while True:
        params = {"action": "auth.login", "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = await client.get("/api/v1/admin/audit", params=params, headers=admin.headers)
        assert page.status_code == 200
        ids += [r["id"] for r in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(ids) == 3  # the admin's login and both users'
    assert ids == sorted(ids, reverse=True)
