"""What the platform command (`llmnet create-admin`, `llmnet seed`) asks of accounts.

Exports: create_or_promote_admin, AdminResult, ensure_system_user, SYSTEM_USERNAME. Each runs
in the caller's session and never commits; bad input is a ValueError whose message the
command prints.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.audit import record_audit
from services.accounts.auth.schemas import RegisterRequest
from services.accounts.auth.service import WeakPassword, auth_service
from services.accounts.config import AccountsSettings
from services.accounts.models import AuditAction, User
from services.accounts.users import repository as users
from shared.auth.identity import Role
from shared.auth.passwords import PasswordHasher

# The platform's own account, which owns the demo model.
SYSTEM_USERNAME = "llmnet"


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
    """Make `username` an administrator: promote the user if it exists, else create it with
    `email` and `password` (held to the registration rules)."""
    user = await users.get_by_username(session, username)
    created = user is None
    if user is None:
        user = await _new_admin(session, settings, username, email, password)
    else:
        user.role = Role.ADMIN.value
    action = AuditAction.USER_REGISTERED if created else AuditAction.USER_ROLE_CHANGED
    record_audit(
        session, action, user.id, actor_id=None, details={"role": Role.ADMIN.value, "via": "cli"}
    )
    return AdminResult(user.username, created=created)


async def _new_admin(
    session: AsyncSession,
    settings: AccountsSettings,
    username: str,
    email: str | None,
    password: str | None,
) -> User:
    if not email or not password:
        raise ValueError("A new admin needs --email and a password.")
    data = RegisterRequest(username=username, email=email, password=password)
    try:
        auth_service.check_password(settings, password, data.username)
    except WeakPassword as exc:
        raise ValueError(exc.detail) from exc
    hasher = PasswordHasher(
        memory_kib=settings.argon2_memory_kib, time_cost=settings.argon2_time_cost
    )
    admin = User(
        username=data.username,
        email=data.email,
        role=Role.ADMIN.value,
        password_hash=await hasher.hash(password),
    )
    return await users.add_user(session, admin)


async def ensure_system_user(session: AsyncSession) -> User:
    """The platform's own account, created on first use. It cannot log in: its password hash
    is of a random secret nobody knows."""
    user = await users.get_by_username(session, SYSTEM_USERNAME)
    if user is not None:
        return user
    hasher = PasswordHasher()
    user = await users.add_user(
        session,
        User(
            username=SYSTEM_USERNAME,
            email="system@llmnet.invalid",
            display_name="llmnet",
            bio="The platform's own account.",
            is_model_developer=True,
            password_hash=await hasher.hash(secrets.token_urlsafe(48)),
        ),
    )
    record_audit(
        session, AuditAction.USER_REGISTERED, user.id, actor_id=None, details={"via": "seed"}
    )
    return user
