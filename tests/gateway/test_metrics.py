"""The gateway's /metrics is on the public port, so only administrators may read it."""

from __future__ import annotations

from tests.factories import admin_session, api_key, user_session


async def test_anonymous_callers_get_401(client) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "llmnet_http_" not in response.text


async def test_users_and_their_keys_get_403(client) -> None:
    user = await user_session(client)
    key = await api_key(client, user, scopes=["read", "write", "inference"])
    for credential in (user.access_token, key["key"]):
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {credential}"})
        assert response.status_code == 403
        assert response.json()["code"] == "admin_required"
        assert "llmnet_http_" not in response.text


async def test_bad_credentials_get_401(client) -> None:
    response = await client.get("/metrics", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert "llmnet_http_" not in response.text


async def test_admins_read_it_with_a_token_or_an_admin_scoped_key(client, platform) -> None:
    admin = await admin_session(client, platform)
    scraper = await api_key(client, admin, scopes=["admin"])
    for credential in (admin.access_token, scraper["key"]):
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {credential}"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "llmnet_http_requests_total" in response.text


async def test_an_admins_key_without_the_admin_scope_gets_403(client, platform) -> None:
    admin = await admin_session(client, platform)
    key = await api_key(client, admin, scopes=["read"])
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {key['key']}"})
    assert response.status_code == 403
    assert response.json()["code"] == "admin_required"
