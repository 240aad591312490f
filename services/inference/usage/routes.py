"""The usage ledger (yours; admins: anyone's) and daily token quotas."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from services.inference.deps import InferenceDep
from services.inference.usage.schemas import (
    ModelUsageSeries,
    QuotaRead,
    QuotaUpdate,
    UsagePage,
)
from services.inference.usage.service import usage_service
from shared.auth.identity import AdminUser, CurrentUser
from shared.db import SessionDep
from shared.fields import Timestamp
from shared.pagination import CursorQuery, LimitQuery

router = APIRouter(prefix="/api/v1/usage", tags=["usage"])


@router.get("", response_model=UsagePage, summary="Token usage, newest first, with totals")
async def ledger(
    caller: CurrentUser,
    session: SessionDep,
    user_id: uuid.UUID | None = Query(default=None, description="Admins: whose usage."),
    model_id: uuid.UUID | None = None,
    since: Timestamp | None = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> UsagePage:
    return await usage_service.ledger_page(
        session,
        caller,
        user_id=user_id,
        model_id=model_id,
        since=since,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/models/{model_id}/daily",
    response_model=ModelUsageSeries,
    summary="A model's use per day: requests, tokens, latency p50/p95",
)
async def model_daily(
    model_id: uuid.UUID,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
    days: int = Query(default=30, ge=1, le=365, description="How many UTC days, today last."),
) -> ModelUsageSeries:
    """Everyone's use of a model you may use (its public statistics, per day)."""
    model = await ctx.models.access_by_id(model_id, caller)
    return await usage_service.model_series(session, model, days)


@router.get("/quota", response_model=QuotaRead, summary="Your daily token quota and use today")
async def my_quota(caller: CurrentUser, session: SessionDep, ctx: InferenceDep) -> QuotaRead:
    return await usage_service.quota_read(session, caller.user_id, ctx.settings.daily_token_quota)


@router.get("/quotas/{user_id}", response_model=QuotaRead, summary="A user's daily quota")
async def get_quota(
    user_id: uuid.UUID, admin: AdminUser, session: SessionDep, ctx: InferenceDep
) -> QuotaRead:
    """Admins: the user's daily token quota (their override, else the default) and use today."""
    return await usage_service.quota_read(session, user_id, ctx.settings.daily_token_quota)


@router.put("/quotas/{user_id}", response_model=QuotaRead, summary="Set a user's daily quota")
async def set_quota(
    user_id: uuid.UUID,
    body: QuotaUpdate,
    admin: AdminUser,
    session: SessionDep,
    ctx: InferenceDep,
) -> QuotaRead:
    await usage_service.set_quota(session, user_id, body.daily_tokens)
    return await usage_service.quota_read(session, user_id, ctx.settings.daily_token_quota)
