"""API keys: shown once, stored hashed, scoped, revocable at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.accounts.models import ApiKey
from shared.auth.api_keys import hash_api_key
from tests.factories import api_key, user_session


async def test_api_key_authenticates_and_stops_after_revocation(client, platform):
    user = await user_session(client)
    created = await api_key(client, user)
    secret = created["key"]
    assert secret.startswith("llm_")
    key_headers = {"Authorization": f"Bearer {secret}"}

    me = await client.get("/api/v1/users/me", headers=key_headers)
    assert me.status_code == 200
    assert me.json()["username"] == user.username

    listed = (await client.get("/api/v1/users/me/api-keys", headers=user.headers)).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert listed[0]["last_used_at"] is not None

    # Only the hash is stored.
    async with platform.sessionmaker() as session:
        stored = await session.scalar(select(ApiKey))
    assert stored.key_hash == hash_api_key(secret)
    assert secret not in (stored.key_prefix + stored.key_hash)

    revoked = await client.delete(
        f"/api/v1/users/me/api-keys/{created['id']}", headers=user.headers
    )
    assert revoked.status_code == 204
    after = await client.get("/api/v1/users/me", headers=key_headers)
    assert after.status_code == 401
    assert after.json()["code"] == "api_key_revoked"


async def test_read_only_key_cannot_write(client):
    user = await user_session(client)
    key = await api_key(client, user, scopes=["read"])
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    response = await client.patch("/api/v1/users/me", json={"bio": "hi"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


async def test_keys_never_grant_more_than_their_creator_holds(client):
    user = await user_session(client)
    admin_key = await client.post(
        "/api/v1/users/me/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=user.headers
    )
    assert admin_key.status_code == 403
    assert admin_key.json()["code"] == "scope_not_allowed"

    read_key = await api_key(client, user, scopes=["read"])
    escalate = await client.post(
        "/api/v1/users/me/api-keys",
        json={"name": "y", "scopes": ["read", "write"]},
        headers={"Authorization": f"Bearer {read_key['key']}"},
    )
    assert escalate.status_code == 403


async def test_expired_key_is_rejected(client, platform):
    user = await user_session(client)
    key = await api_key(client, user)
    async with platform.sessionmaker() as session, session.begin():
        stored = await session.get(ApiKey, key["id"])
        stored.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    response = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {key['key']}"}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_expired"


async def test_unknown_key_and_bad_requests(client):
    user = await user_session(client)
    unknown = await client.get(
        "/api/v1/users/me", headers={"Authorization": "Bearer llm_not-a-real-key"}
    )
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "invalid_api_key"

    past = await client.post(
        "/api/v1/users/me/api-keys",
        json={"name": "old", "expires_at": "2000-01-01T00:00:00Z"},
        headers=user.headers,
    )
    assert past.status_code == 422
    bad_scope = await client.post(
        "/api/v1/users/me/api-keys", json={"name": "s", "scopes": ["root"]}, headers=user.headers
    )
    assert bad_scope.status_code == 422
    assert bad_scope.json()["fields"][0]["field"].startswith("scopes")


async def test_cannot_revoke_someone_elses_key(client):
    owner = await user_session(client)
    other = await user_session(client)
    key = await api_key(client, owner)
    response = await client.delete(f"/api/v1/users/me/api-keys/{key['id']}", headers=other.headers)
    assert response.status_code == 404
    still = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {key['key']}"})
    assert still.status_code == 200


async def test_internal_resolve_endpoint_is_not_public(client, platform):
    # Not routed by the gateway...
    response = await client.post("/internal/api-keys/resolve", json={"key_hash": "0" * 64})
    assert response.status_code == 404
    # ...and, to a caller without the gateway's service credential, absent at accounts itself
    # (tests/accounts/internal/test_internal.py covers each credential).
    import httpx

    async with httpx.AsyncClient(base_url=platform.service_urls["accounts"]) as direct:
        response = await direct.post("/internal/api-keys/resolve", json={"key_hash": "0" * 64})
    assert response.status_code == 404
