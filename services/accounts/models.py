"""Tables owned by the accounts service, and the fixed vocabularies of their columns.

`Role` and `Scope` are defined in `shared.auth.identity`, since tokens, identity headers and
every service's authorization carry them; the columns here are checked against them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.auth.identity import Role, Scope
from shared.db import Base, one_of, sql_values


class AuditTarget(StrEnum):
    """What an audit record is about (its target_id is that thing's id)."""

    USER = "user"
    API_KEY = "api_key"
    TOKEN_FAMILY = "token_family"


class AuditAction(StrEnum):
    USER_REGISTERED = "user.registered"
    USER_ROLE_CHANGED = "user.role_changed"
    USER_BANNED = "user.banned"
    USER_UNBANNED = "user.unbanned"
    LOGIN = "auth.login"
    LOGOUT = "auth.logout"
    REFRESH_TOKEN_REUSED = "auth.refresh_reuse"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    EMAIL_VERIFIED = "auth.email_verified"
    PASSWORD_RESET = "auth.password_reset"

    @property
    def target(self) -> AuditTarget:
        """What the action is about: the record's target_type."""
        return _AUDIT_TARGETS[self]


_AUDIT_TARGETS = {
    AuditAction.USER_REGISTERED: AuditTarget.USER,
    AuditAction.USER_ROLE_CHANGED: AuditTarget.USER,
    AuditAction.USER_BANNED: AuditTarget.USER,
    AuditAction.USER_UNBANNED: AuditTarget.USER,
    AuditAction.LOGIN: AuditTarget.USER,
    AuditAction.LOGOUT: AuditTarget.TOKEN_FAMILY,
    AuditAction.REFRESH_TOKEN_REUSED: AuditTarget.TOKEN_FAMILY,
    AuditAction.API_KEY_CREATED: AuditTarget.API_KEY,
    AuditAction.API_KEY_REVOKED: AuditTarget.API_KEY,
    AuditAction.EMAIL_VERIFIED: AuditTarget.USER,
    AuditAction.PASSWORD_RESET: AuditTarget.USER,
}


class TokenPurpose(StrEnum):
    """What a mailed account token is good for (once)."""

    EMAIL_VERIFICATION = "email_verification"
    PASSWORD_RESET = "password_reset"


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # The revocation sync lists banned users every minute; few are, so it stays tiny.
        Index("ix_users_banned", "id", postgresql_where=text("is_banned")),
        one_of("role", Role),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Stored lower-case: usernames and emails are unique regardless of case.
    username: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(100))
    bio: Mapped[str | None] = mapped_column(String(1000))
    avatar_url: Mapped[str | None] = mapped_column(String(2048))
    is_model_developer: Mapped[bool] = mapped_column(Boolean, default=False)
    role: Mapped[str] = mapped_column(String(20), default=Role.USER.value)
    is_banned: Mapped[bool] = mapped_column(Boolean, default=False)
    banned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ban_reason: Mapped[str | None] = mapped_column(String(500))
    # When a mailed link proved the address reaches the user (recovery/): null until then.
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class UserFollow(Base):
    __tablename__ = "user_follows"
    __table_args__ = (
        CheckConstraint("follower_id <> followee_id", name="no_self_follow"),
        Index("ix_user_follows_followee_created", "followee_id", "created_at"),
        Index("ix_user_follows_follower_created", "follower_id", "created_at"),
    )

    follower_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    followee_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = _created_at()

    # Loaded only where a follow list joins them (contains_eager), never lazily.
    follower: Mapped[User] = relationship(foreign_keys=[follower_id], lazy="raise")
    followee: Mapped[User] = relationship(foreign_keys=[followee_id], lazy="raise")


class RefreshToken(Base):
    """One row per issued refresh token; a family is one login's chain of rotations."""

    __tablename__ = "refresh_tokens"
    # The revocation sync reads the families revoked in the last access-token lifetime.
    __table_args__ = (
        Index(
            "ix_refresh_tokens_revoked_at",
            "revoked_at",
            "family_id",
            postgresql_where=text("revoked_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the token's jti
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = _created_at()
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccountToken(Base):
    """A single-use token mailed to a user (email verification, password reset). Like API
    keys, only the SHA-256 of the secret is stored: the mail is the one place it exists."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        one_of("purpose", TokenPurpose),
        Index("ix_account_tokens_user_id_purpose", "user_id", "purpose"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The address the mail went to: a verification proves this address, no other.
    email: Mapped[str] = mapped_column(String(320))
    # The outbox event the mail answered: a redelivered event sends no second mail.
    event_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        # Every element a known scope (`<@`: contained in); the cast matches the column's type.
        CheckConstraint(
            f"scopes <@ ARRAY[{sql_values(Scope)}]::varchar(20)[]", name="scopes_valid"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(20)))
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = (one_of("action", AuditAction), one_of("target_type", AuditTarget))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
