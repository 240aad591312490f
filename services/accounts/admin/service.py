"""Admin actions on users: search, ban and unban (effective at once), roles, audit trail."""

from __future__ import annotations

import logging
import uuid

from redis.exceptions import RedisError
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.admin.schemas import AdminUserRead, AuditRecordRead
from services.accounts.audit import record_audit
from services.accounts.deps import AccountsContext
from services.accounts.models import AuditRecord, RefreshToken, User
from services.accounts.users.service import UserNotFound
from shared.auth.identity import Identity
from shared.auth.revocation import banned_user_key
from shared.db import after_commit, utcnow
from shared.errors import BadRequest
from shared.events import record_event
from shared.pagination import CursorPart, Page, decode_cursor, encode_cursor

logger = logging.getLogger("llmnet.accounts.revocation")


class AdminService:
    async def list_users(
        self, session: AsyncSession, q: str | None, cursor: str | None, limit: int
    ) -> Page[AdminUserRead]:
        query = select(User).order_by(User.username).limit(limit + 1)
        if q:
            pattern = (
                "%" + q.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
            )
            query = query.where(
                or_(
                    User.username.like(pattern),
                    User.email.like(pattern),
                    User.display_name.ilike(pattern),
                )
            )
        if cursor:
            (after,) = decode_cursor(cursor, CursorPart.TEXT)
            query = query.where(User.username > after)
        rows = list(await session.scalars(query))
        next_cursor = encode_cursor(rows[limit - 1].username) if len(rows) > limit else None
        return Page[AdminUserRead](
            items=[AdminUserRead.model_validate(u) for u in rows[:limit]], next_cursor=next_cursor
        )

    async def _user(self, session: AsyncSession, user_id: uuid.UUID) -> User:
        user = await session.get(User, user_id)
        if user is None:
            raise UserNotFound("No such user.")
        return user

    async def set_banned(
        self,
        session: AsyncSession,
        ctx: AccountsContext,
        admin: Identity,
        user_id: uuid.UUID,
        *,
        banned: bool,
        reason: str | None,
        ip: str | None,
    ) -> AdminUserRead:
        user = await self._user(session, user_id)
        if user.id == admin.user_id:
            raise BadRequest("You cannot ban yourself.", code="cannot_ban_self")
        user.is_banned = banned
        user.banned_at = utcnow() if banned else None
        user.ban_reason = reason if banned else None
        if banned:
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        action = "user.banned" if banned else "user.unbanned"
        record_audit(
            session,
            action,
            actor_id=admin.user_id,
            target_type="user",
            target_id=user.id,
            ip=ip,
            details={"reason": reason} if reason else {},
        )
        record_event(session, action, {"user_id": str(user.id)}, source="accounts")
        key = banned_user_key(str(user.id))

        async def _publish_ban() -> None:
            # The gateway checks this key on every request: tokens and keys stop at once.
            try:
                if banned:
                    await ctx.redis.set(key, "1")
                else:
                    await ctx.redis.delete(key)
            except RedisError as exc:
                # Committed all the same: the revocation sync brings Redis in line once it
                # answers again.
                logger.warning(
                    "could not publish the %s of user %s to Redis (%s); the revocation sync will",
                    "ban" if banned else "unban",
                    user.id,
                    exc,
                    extra={"fields": {"user_id": str(user.id)}},
                )

        after_commit(session, _publish_ban)
        await session.flush()
        return AdminUserRead.model_validate(user)

    async def set_role(
        self,
        session: AsyncSession,
        admin: Identity,
        user_id: uuid.UUID,
        role: str,
        ip: str | None,
    ) -> AdminUserRead:
        user = await self._user(session, user_id)
        if user.id == admin.user_id and role != "admin":
            raise BadRequest("You cannot demote yourself.", code="cannot_demote_self")
        user.role = role
        record_audit(
            session,
            "user.role_changed",
            actor_id=admin.user_id,
            target_type="user",
            target_id=user.id,
            ip=ip,
            details={"role": role},
        )
        await session.flush()
        return AdminUserRead.model_validate(user)

    async def audit_page(
        self, session: AsyncSession, action: str | None, cursor: str | None, limit: int
    ) -> Page[AuditRecordRead]:
        query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit + 1)
        if action:
            query = query.where(AuditRecord.action == action)
        if cursor:
            (before,) = decode_cursor(cursor, CursorPart.INT64)
            query = query.where(AuditRecord.id < before)
        rows = list(await session.scalars(query))
        next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return Page[AuditRecordRead](
            items=[AuditRecordRead.model_validate(r) for r in rows[:limit]],
            next_cursor=next_cursor,
        )


admin_service = AdminService()
