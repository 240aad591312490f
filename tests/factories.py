"""Plain async helpers that create what tests need through the public API."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from services.accounts.bootstrap import create_or_promote_admin
from services.accounts.config import AccountsSettings
from shared.auth.identity import Identity, scopes_for
from shared.db import session_scope

PASSWORD = "correct-horse-42"
_counter = itertools.count(1)


@dataclass
class UserSession:
    id: str
    username: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def identity_of(user: UserSession, role: str = "user") -> Identity:
    """The identity the gateway forwards for this user's session."""
    return Identity(
        user_id=uuid.UUID(user.id),
        username=user.username,
        role=role,
        scopes=scopes_for(role),
        auth_method="jwt",
    )


async def register(
    client: httpx.AsyncClient, username: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    username = username or f"user{next(_counter)}"
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def user_session(client: httpx.AsyncClient, username: str | None = None) -> UserSession:
    user = await register(client, username)
    tokens = await login(client, user["username"])
    return UserSession(
        user["id"], user["username"], tokens["access_token"], tokens["refresh_token"]
    )


async def admin_session(client: httpx.AsyncClient, platform: Any) -> UserSession:
    """A user promoted to admin by the `llmnet create-admin` code path."""
    user = await register(client)
    settings = AccountsSettings(**platform.common, jwt_private_key_file=platform.jwt_key_file)
    async with session_scope(platform.sessionmaker) as session:
        await create_or_promote_admin(
            session, settings, username=user["username"], email=None, password=None
        )
    tokens = await login(client, user["username"])  # the new role is in fresh tokens
    return UserSession(
        user["id"], user["username"], tokens["access_token"], tokens["refresh_token"]
    )


async def api_key(
    client: httpx.AsyncClient, session: UserSession, scopes: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "test key"}
    if scopes is not None:
        body["scopes"] = scopes
    response = await client.post("/api/v1/users/me/api-keys", json=body, headers=session.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
