"""Bans and logouts survive a Redis that lost them: the revocation sync rewrites them from the
database, as the accounts worker does every ACCOUNTS_REVOCATION_SYNC_SECONDS."""

from __future__ import annotations

import dataclasses
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq import create_pool
from jose import jwt
from redis.asyncio import Redis
from sqlalchemy import update

from services.accounts.auth.revocation import REVOCATION_MARGIN_SECONDS
from services.accounts.auth.tasks import sync_revocation_keys
from services.accounts.models import RefreshToken
from shared.auth.revocation import banned_user_key, revoked_family_key
from shared.db import session_scope
from shared.jobs import worker_redis_settings
from tests.conftest import REDIS_URL, Platform
from tests.factories import UserSession, admin_session, user_session


@pytest.fixture
async def worker_ctx(platform: Platform) -> AsyncIterator[dict[str, Any]]:
    """What the accounts worker hands its jobs: its settings, a sessionmaker, arq's Redis."""
    redis = await create_pool(worker_redis_settings(REDIS_URL))
    yield {
        "settings": platform.apps["accounts"].state.accounts.settings,
        "sessionmaker": platform.sessionmaker,
        "redis": redis,
    }
    await redis.aclose()


async def _me(client: httpx.AsyncClient, user: UserSession) -> httpx.Response:
    return await client.get("/api/v1/users/me", headers=user.headers)


async def _ban(client: httpx.AsyncClient, admin: UserSession, user: UserSession) -> None:
    response = await client.post(
        f"/api/v1/admin/users/{user.id}/ban", json={"reason": "spam"}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


async def _logout(client: httpx.AsyncClient, user: UserSession) -> None:
    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": user.refresh_token}, headers=user.headers
    )
    assert response.status_code == 204, response.text


def _family(user: UserSession) -> str:
    return str(jwt.get_unverified_claims(user.access_token)["fam"])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class RedisOutage:
    """Accounts' own Redis writes fail (connection refused); the gateway's Redis still works,
    as when accounts loses its connection or Redis restarts between the commit and the write."""

    platform: Platform

    async def __aenter__(self) -> None:
        app = self.platform.apps["accounts"]
        self._context = app.state.accounts
        self._dead = Redis.from_url(f"redis://127.0.0.1:{_free_port()}/0", decode_responses=True)
        app.state.accounts = dataclasses.replace(self._context, redis=self._dead)

    async def __aexit__(self, *exc: object) -> None:
        self.platform.apps["accounts"].state.accounts = self._context
        await self._dead.aclose()


async def test_a_ban_redis_lost_is_enforced_again_after_the_sync(client, platform, worker_ctx):
    admin = await admin_session(client, platform)
    target = await user_session(client)
    await _ban(client, admin, target)
    assert (await _me(client, target)).status_code == 403

    await platform.redis.flushdb()  # Redis came back empty
    assert (await _me(client, target)).status_code == 200  # the gap the sync closes

    result = await sync_revocation_keys(worker_ctx)
    assert result["bans_restored"] == 1
    response = await _me(client, target)
    assert response.status_code == 403
    assert response.json()["code"] == "account_banned"
    assert (await _me(client, admin)).status_code == 200


async def test_an_unban_redis_missed_is_lifted_by_the_sync(client, platform, worker_ctx):
    admin = await admin_session(client, platform)
    target = await user_session(client)
    await _ban(client, admin, target)
    unban = await client.post(f"/api/v1/admin/users/{target.id}/unban", headers=admin.headers)
    assert unban.status_code == 200
    # The unban's delete never reached Redis: the ban key is still there.
    await platform.redis.set(banned_user_key(target.id), "1")
    # The ban revoked the old login; the user logs in again after the unban.
    again = await client.post(
        "/api/v1/auth/login", json={"username": target.username, "password": "correct-horse-42"}
    )
    assert again.status_code == 200
    fresh = dataclasses.replace(
        target,
        access_token=again.json()["access_token"],
        refresh_token=again.json()["refresh_token"],
    )
    assert (await _me(client, fresh)).status_code == 403

    result = await sync_revocation_keys(worker_ctx)
    assert result["bans_lifted"] == 1
    assert (await _me(client, fresh)).status_code == 200


async def test_a_logout_redis_lost_is_enforced_again_after_the_sync(client, platform, worker_ctx):
    user = await user_session(client)
    other = await user_session(client)
    await _logout(client, user)
    assert (await _me(client, user)).status_code == 401

    await platform.redis.flushdb()
    assert (await _me(client, user)).status_code == 200

    result = await sync_revocation_keys(worker_ctx)
    assert result["families_restored"] == 1
    response = await _me(client, user)
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"
    # The key lasts as long as the family's access tokens can, and no longer.
    ttl = await platform.redis.ttl(revoked_family_key(_family(user)))
    lifetime = worker_ctx["settings"].access_token_ttl_seconds + REVOCATION_MARGIN_SECONDS
    assert 0 < ttl <= lifetime
    assert (await _me(client, other)).status_code == 200


async def test_a_family_revoked_before_the_access_ttl_is_not_restored(client, platform, worker_ctx):
    stale = await user_session(client)
    recent = await user_session(client)
    await _logout(client, stale)
    await _logout(client, recent)
    # The stale logout happened longer ago than any access token of its family can live.
    lifetime = worker_ctx["settings"].access_token_ttl_seconds + REVOCATION_MARGIN_SECONDS
    async with session_scope(platform.sessionmaker) as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == uuid.UUID(_family(stale)))
            .values(revoked_at=datetime.now(UTC) - timedelta(seconds=lifetime + 60))
        )
    await platform.redis.flushdb()

    result = await sync_revocation_keys(worker_ctx)
    assert result["revoked_families"] == 1
    assert await platform.redis.exists(revoked_family_key(_family(stale))) == 0
    assert await platform.redis.exists(revoked_family_key(_family(recent))) == 1
    assert (await _me(client, recent)).status_code == 401


async def test_a_logout_write_redis_refused_is_logged_and_repaired_by_the_sync(
    client, platform, worker_ctx, caplog
):
    user = await user_session(client)
    async with RedisOutage(platform):
        await _logout(client, user)  # committed: the logout itself succeeds
    (warning,) = [r for r in caplog.records if _family(user) in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert (await _me(client, user)).status_code == 200  # Redis never heard of it

    await sync_revocation_keys(worker_ctx)
    assert (await _me(client, user)).status_code == 401


async def test_a_ban_write_redis_refused_is_logged_and_repaired_by_the_sync(
    client, platform, worker_ctx, caplog
):
    admin = await admin_session(client, platform)
    target = await user_session(client)
    async with RedisOutage(platform):
        await _ban(client, admin, target)
    (warning,) = [r for r in caplog.records if target.id in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert (await _me(client, target)).status_code == 200

    await sync_revocation_keys(worker_ctx)
    assert (await _me(client, target)).status_code == 403


async def test_a_second_sync_changes_nothing(client, platform, worker_ctx):
    admin = await admin_session(client, platform)
    target = await user_session(client)
    await _ban(client, admin, target)
    await _logout(client, admin)
    await platform.redis.flushdb()
    first = await sync_revocation_keys(worker_ctx)
    # The admin's logout, and the target's login, which the ban revoked.
    assert (first["bans_restored"], first["families_restored"]) == (1, 2)

    second = await sync_revocation_keys(worker_ctx)
    assert second == {**first, "bans_restored": 0, "families_restored": 0}
