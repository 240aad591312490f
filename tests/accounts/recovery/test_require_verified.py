"""REQUIRE_VERIFIED_EMAIL: unverified accounts are refused the gated actions, with a code."""

from __future__ import annotations

import pytest

from tests.factories import user_session

from .conftest import token_of


@pytest.fixture
def required(accounts_settings, monkeypatch):
    monkeypatch.setattr(accounts_settings, "require_verified_email", True)


async def _create_key(client, user):
    return await client.post(
        "/api/v1/users/me/api-keys", json={"name": "cli", "scopes": ["read"]}, headers=user.headers
    )


async def test_unverified_accounts_may_not_create_keys_or_follow_until_verified(
    client, accounts, mailbox, mail_worker, required
):
    user = await user_session(client, "unsure")
    other = await user_session(client, "other")

    refused = await _create_key(client, user)
    assert refused.status_code == 403
    assert refused.json()["code"] == "email_not_verified"
    follow = await client.post("/api/v1/users/other/follow", headers=user.headers)
    assert follow.status_code == 403
    assert follow.json()["code"] == "email_not_verified"
    # Reading and editing one's profile stay open, and so does asking for a new link.
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200
    patched = await client.patch(
        "/api/v1/users/me", json={"display_name": "Unsure"}, headers=user.headers
    )
    assert patched.status_code == 200

    mails = await mailbox.wait_for(2)
    (mine,) = [m for m in mails if m["To"] == "unsure@example.com"]
    assert (
        await accounts.post("/api/v1/auth/email/verify", json={"token": token_of(mine)})
    ).status_code == 200
    assert (await _create_key(client, user)).status_code == 201
    assert (
        await client.post("/api/v1/users/other/follow", headers=user.headers)
    ).status_code == 200
    assert other.username == "other"


async def test_by_default_unverified_accounts_are_not_limited(client):
    user = await user_session(client)
    assert (await _create_key(client, user)).status_code == 201
