"""Admin actions on users: search, ban and unban (effective at once), roles, audit trail."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.admin import repository
from services.accounts.admin.schemas import AdminUserRead, AuditRecordRead
from services.accounts.audit import record_audit
from services.accounts.auth.revocation import revocation_service
from services.accounts.deps import AccountsContext
from services.accounts.models import AuditAction, AuditRecord, AuditTarget
from services.accounts.users.service import user_service
from shared.auth.identity import Identity, Role
from shared.db import utcnow
from shared.errors import BadRequest
from shared.events import record_event
from shared.pagination import Page


class AdminService:
    async def list_users(
        self, session: AsyncSession, q: str | None, cursor: str | None, limit: int
    ) -> Page[AdminUserRead]:
        users, next_cursor = await repository.search_users(session, q, cursor=cursor, limit=limit)
        return Page[AdminUserRead](
            items=[AdminUserRead.model_validate(u) for u in users], next_cursor=next_cursor
        )

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
        user = await user_service.get(session, user_id)
        if user.id == admin.user_id:
            raise BadRequest("You cannot ban yourself.", code="cannot_ban_self")
        user.is_banned = banned
        user.banned_at = utcnow() if banned else None
        user.ban_reason = reason if banned else None
        # The gateway checks the ban on every request: tokens and keys stop once this commits.
        if banned:
            await revocation_service.ban(session, ctx, user.id)
        else:
            revocation_service.lift_ban(session, ctx, user.id)
        action = AuditAction.USER_BANNED if banned else AuditAction.USER_UNBANNED
        record_audit(
            session,
            action,
            user.id,
            actor_id=admin.user_id,
            ip=ip,
            details={"reason": reason} if reason else {},
        )
        record_event(session, action.value, {"user_id": str(user.id)}, source="accounts")
        await session.flush()
        return AdminUserRead.model_validate(user)

    async def set_role(
        self,
        session: AsyncSession,
        admin: Identity,
        user_id: uuid.UUID,
        role: Role,
        ip: str | None,
    ) -> AdminUserRead:
        user = await user_service.get(session, user_id)
        if user.id == admin.user_id and role != Role.ADMIN:
            raise BadRequest("You cannot demote yourself.", code="cannot_demote_self")
        user.role = role.value
        record_audit(
            session,
            AuditAction.USER_ROLE_CHANGED,
            user.id,
            actor_id=admin.user_id,
            ip=ip,
            details={"role": role.value},
        )
        await session.flush()
        return AdminUserRead.model_validate(user)

    async def audit_page(
        self,
        session: AsyncSession,
        action: str | None,
        user_id: uuid.UUID | None,
        cursor: str | None,
        limit: int,
    ) -> Page[AuditRecordRead]:
        records, next_cursor = await repository.audit_page(
            session, action, user_id, cursor=cursor, limit=limit
        )
        names = await repository.usernames(session, _user_ids(records))
        items = []
        for record in records:
            target = _target_user(record)
            items.append(
                AuditRecordRead.model_validate(record).model_copy(
                    update={
                        "actor_username": names.get(record.actor_id) if record.actor_id else None,
                        "target_username": names.get(target) if target else None,
                    }
                )
            )
        return Page[AuditRecordRead](items=items, next_cursor=next_cursor)


def _target_user(record: AuditRecord) -> uuid.UUID | None:
    if record.target_type != AuditTarget.USER.value or not record.target_id:
        return None
    try:
        return uuid.UUID(record.target_id)
    except ValueError:
        return None


def _user_ids(records: list[AuditRecord]) -> set[uuid.UUID]:
    ids = {r.actor_id for r in records if r.actor_id is not None}
    return ids | {t for r in records if (t := _target_user(r)) is not None}


admin_service = AdminService()
