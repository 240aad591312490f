"""Accounts' bootstrap: `llmnet create-admin` and the platform's own account."""

from __future__ import annotations

import asyncio
import io

import pytest

from llmnet.cli import main as llmnet
from services.accounts.bootstrap import (
    SYSTEM_USERNAME,
    create_or_promote_admin,
    ensure_system_user,
)
from services.accounts.config import AccountsSettings
from shared.db import session_scope
from tests.factories import login, user_session


async def test_create_admin_command_creates_a_new_admin(client, platform, monkeypatch):
    common = platform.common
    monkeypatch.setenv("DATABASE_URL", common["database_url"])
    monkeypatch.setenv("REDIS_URL", common["redis_url"])
    monkeypatch.setenv("INTERNAL_TOKEN", common["internal_token"])
    monkeypatch.setenv("SERVICE_TOKEN", common["service_token"])
    monkeypatch.setenv("ACCOUNTS_JWT_PRIVATE_KEY_FILE", str(platform.jwt_key_file))
    monkeypatch.setattr("sys.stdin", io.StringIO("root-password-123\n"))
    code = await asyncio.to_thread(
        llmnet, ["create-admin", "rootadmin", "--email", "root@example.com", "--password-stdin"]
    )
    assert code == 0
    tokens = await login(client, "rootadmin", "root-password-123")
    listing = await client.get(
        "/api/v1/admin/users", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert listing.status_code == 200


async def test_create_admin_promotes_an_existing_user(client, platform):
    user = await user_session(client, "climber")
    settings = AccountsSettings(**platform.common, jwt_private_key_file=platform.jwt_key_file)
    async with session_scope(platform.sessionmaker) as session:
        result = await create_or_promote_admin(
            session, settings, username="Climber", email=None, password=None
        )
    assert (result.username, result.created) == ("climber", False)
    # Old tokens keep the old role; a new login carries the new one.
    before = await client.get("/api/v1/admin/users", headers=user.headers)
    assert before.status_code == 403
    tokens = await login(client, "climber")
    after = await client.get(
        "/api/v1/admin/users", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert after.status_code == 200
    assert [u["role"] for u in after.json()["items"]] == ["admin"]


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        (None, None, "needs --email and a password"),
        ("weak@example.com", "short1", "The password must be at least"),
        ("not-an-email", "root-password-123", "email"),
    ],
)
async def test_create_admin_refuses_what_registration_would(platform, email, password, message):
    settings = AccountsSettings(**platform.common, jwt_private_key_file=platform.jwt_key_file)
    async with session_scope(platform.sessionmaker) as session:
        with pytest.raises(ValueError, match=message):
            await create_or_promote_admin(
                session, settings, username="newroot", email=email, password=password
            )


async def test_the_system_user_is_created_once_and_cannot_log_in(client, platform):
    async with session_scope(platform.sessionmaker) as session:
        first = await ensure_system_user(session)
    async with session_scope(platform.sessionmaker) as session:
        again = await ensure_system_user(session)
    assert first.id == again.id
    profile = await client.get(f"/api/v1/users/{SYSTEM_USERNAME}")
    assert profile.status_code == 200
    assert profile.json()["is_model_developer"] is True
    response = await client.post(
        "/api/v1/auth/login", json={"username": SYSTEM_USERNAME, "password": "anything-1234"}
    )
    assert response.status_code == 401
