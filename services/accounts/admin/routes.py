"""Administration (admins only)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request

from services.accounts.admin.schemas import AdminUserRead, AuditRecordRead, BanRequest, RoleUpdate
from services.accounts.admin.service import admin_service
from services.accounts.deps import ContextDep
from shared.auth.identity import AdminUser, client_ip
from shared.db import SessionDep
from shared.fields import Text
from shared.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/users", response_model=Page[AdminUserRead], summary="Search users")
async def list_users(
    admin: AdminUser,
    session: SessionDep,
    q: Text | None = Query(default=None, max_length=100, description="Part of name or email."),
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> Page[AdminUserRead]:
    return await admin_service.list_users(session, q, cursor, limit)


@router.post("/users/{user_id}/ban", response_model=AdminUserRead, summary="Ban a user now")
async def ban(
    user_id: uuid.UUID,
    body: BanRequest,
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    ctx: ContextDep,
) -> AdminUserRead:
    return await admin_service.set_banned(
        session, ctx, admin, user_id, banned=True, reason=body.reason, ip=client_ip(request)
    )


@router.post("/users/{user_id}/unban", response_model=AdminUserRead, summary="Lift a ban")
async def unban(
    user_id: uuid.UUID, request: Request, admin: AdminUser, session: SessionDep, ctx: ContextDep
) -> AdminUserRead:
    return await admin_service.set_banned(
        session, ctx, admin, user_id, banned=False, reason=None, ip=client_ip(request)
    )


@router.put("/users/{user_id}/role", response_model=AdminUserRead, summary="Set a user's role")
async def set_role(
    user_id: uuid.UUID, body: RoleUpdate, request: Request, admin: AdminUser, session: SessionDep
) -> AdminUserRead:
    return await admin_service.set_role(session, admin, user_id, body.role, client_ip(request))


@router.get("/audit", response_model=Page[AuditRecordRead], summary="The audit trail, newest first")
async def audit(
    admin: AdminUser,
    session: SessionDep,
    action: Text | None = Query(default=None, max_length=64),
    user_id: uuid.UUID | None = Query(
        default=None, description="Only what this user did, or what was done to them."
    ),
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[AuditRecordRead]:
    return await admin_service.audit_page(session, action, user_id, cursor, limit)
