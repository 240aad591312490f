"""`llmnet create-admin`: create the first administrator, or promote an existing user."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.audit import record_audit
from services.accounts.auth.schemas import RegisterRequest, password_problem
from services.accounts.config import AccountsSettings
from services.accounts.models import User
from services.accounts.users import repository as users
from shared.auth.passwords import PasswordHasher


@dataclass(frozen=True, slots=True)
class AdminResult:
    username: str
    created: bool


async def create_or_promote_admin(
    session: AsyncSession,
    settings: AccountsSettings,
    *,
    username: str,
    email: str | None,
    password: str | None,
) -> AdminResult:
    existing = await users.get_by_username(session, username)
    if existing is not None:
        existing.role = "admin"
        record_audit(
            session,
            "user.role_changed",
            actor_id=None,
            target_type="user",
            target_id=existing.id,
            details={"role": "admin", "via": "cli"},
        )
        return AdminResult(existing.username, created=False)
    if not email or not password:
        raise ValueError("A new admin needs --email and a password.")
    data = RegisterRequest(username=username, email=email, password=password)
    problem = password_problem(
        password,
        data.username,
        min_length=settings.password_min_length,
        max_length=settings.password_max_length,
    )
    if problem:
        raise ValueError(f"The password {problem}.")
    hasher = PasswordHasher(
        memory_kib=settings.argon2_memory_kib, time_cost=settings.argon2_time_cost
    )
    user = User(
        username=data.username,
        email=data.email,
        role="admin",
        password_hash=await hasher.hash(password),
    )
    session.add(user)
    await session.flush()
    record_audit(
        session,
        "user.registered",
        actor_id=None,
        target_type="user",
        target_id=user.id,
        details={"role": "admin", "via": "cli"},
    )
    return AdminResult(user.username, created=True)


SYSTEM_USERNAME = "llmnet"


async def ensure_system_user(session: AsyncSession) -> User:
    """The platform's own account, which owns the demo model. It cannot log in: its password
    hash is of a random secret nobody knows."""
    user = await users.get_by_username(session, SYSTEM_USERNAME)
    if user is None:
        hasher = PasswordHasher()
        user = User(
            username=SYSTEM_USERNAME,
            email="system@llmnet.invalid",
            display_name="llmnet",
            bio="The platform's own account.",
            is_model_developer=True,
            password_hash=await hasher.hash(secrets.token_urlsafe(48)),
        )
        session.add(user)
        await session.flush()
        record_audit(
            session,
            "user.registered",
            actor_id=None,
            target_type="user",
            target_id=user.id,
            details={"via": "seed"},
        )
    return user
