"""The usage ledger: what every completion cost, per user and model; daily token quotas.

Each completion is written once, when it ends (finished, cut short by the client, or
failed), together with a `model.usage` event the model hub turns into the model's
statistics: both in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.inference.models import TokenQuota, UsageRecord
from services.inference.usage.schemas import QuotaRead, UsagePage, UsageRead, UsageTotals
from shared.auth.identity import Identity
from shared.db import session_scope, utcnow
from shared.errors import TooManyRequests
from shared.events import record_event
from shared.models_client import ModelAccess
from shared.pagination import CursorPart, decode_cursor, encode_cursor


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"


class ModelCapReached(TooManyRequests):
    """The model's owner bounds what others spend on it per day (their provider key, say)."""

    code = "model_cap_reached"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    status: str  # completed, cancelled, failed


def _day_start() -> datetime:
    now = utcnow()
    return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)


async def used_today(session: AsyncSession, user_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(
            func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0)
        ).where(UsageRecord.user_id == user_id, UsageRecord.created_at >= _day_start())
    )
    return int(total or 0)


async def quota_for(session: AsyncSession, user_id: uuid.UUID, default: int) -> int | None:
    override = await session.get(TokenQuota, user_id)
    if override is not None:
        return override.daily_tokens
    return default or None


async def model_used_today(
    session: AsyncSession, model_id: uuid.UUID, *, user_id: uuid.UUID | None, except_user: uuid.UUID
) -> int:
    """Tokens spent on a model today by one user, or by everyone but `except_user`."""
    who = UsageRecord.user_id == user_id if user_id else UsageRecord.user_id != except_user
    total = await session.scalar(
        select(
            func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0)
        ).where(UsageRecord.model_id == model_id, who, UsageRecord.created_at >= _day_start())
    )
    return int(total or 0)


def _spent(message: str, error: type[TooManyRequests] = QuotaExceeded) -> TooManyRequests:
    tomorrow = _day_start() + timedelta(days=1)
    return error(
        f"{message}; it resets at {tomorrow.isoformat()}.",
        retry_after=int((tomorrow - utcnow()).total_seconds()) + 1,
    )


async def check_quota(
    sessionmaker: async_sessionmaker[AsyncSession],
    caller: Identity,
    default: int,
    model: ModelAccess,
) -> None:
    """Before any work starts: 429 once the caller's tokens of the day are spent, or what the
    model's owner lets others spend on it (the owner is bound only by their own quota)."""
    others = caller.user_id != model.owner_id
    async with session_scope(sessionmaker) as session:
        quota = await quota_for(session, caller.user_id, default)
        if quota is not None and (used := await used_today(session, caller.user_id)) >= quota:
            raise _spent(f"Your daily quota of {quota} tokens is spent ({used} used)")
        if others and model.user_daily_token_cap is not None:
            used = await model_used_today(
                session, model.id, user_id=caller.user_id, except_user=model.owner_id
            )
            if used >= model.user_daily_token_cap:
                raise _spent(
                    f"{model.ref} allows each user {model.user_daily_token_cap} tokens a day, "
                    f"and you have used {used}",
                    ModelCapReached,
                )
        if others and model.daily_token_cap is not None:
            used = await model_used_today(
                session, model.id, user_id=None, except_user=model.owner_id
            )
            if used >= model.daily_token_cap:
                raise _spent(
                    f"{model.ref} allows {model.daily_token_cap} tokens a day to all users "
                    "together, and they are spent",
                    ModelCapReached,
                )


async def record_usage(
    sessionmaker: async_sessionmaker[AsyncSession],
    caller: Identity,
    model: ModelAccess,
    endpoint: str,
    usage: Usage,
) -> None:
    async with session_scope(sessionmaker) as session:
        session.add(
            UsageRecord(
                user_id=caller.user_id,
                api_key_id=caller.api_key_id,
                model_id=model.id,
                model_ref=model.ref,
                source="remote" if model.source == "remote" else "local",
                endpoint=endpoint,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                latency_ms=usage.latency_ms,
                status=usage.status,
            )
        )
        record_event(
            session,
            "model.usage",
            {
                "model_id": str(model.id),
                "user_id": str(caller.user_id),
                "latency_ms": usage.latency_ms,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "status": usage.status,
            },
            source="inference",
        )


async def ledger_page(
    session: AsyncSession,
    caller: Identity,
    *,
    user_id: uuid.UUID | None,
    model_id: uuid.UUID | None,
    since: datetime | None,
    cursor: str | None,
    limit: int,
) -> UsagePage:
    # Users see their own ledger; admins anyone's (all of it without a user filter).
    owner = user_id if caller.is_admin else caller.user_id
    conditions = []
    if owner is not None:
        conditions.append(UsageRecord.user_id == owner)
    if model_id is not None:
        conditions.append(UsageRecord.model_id == model_id)
    if since is not None:
        conditions.append(UsageRecord.created_at >= since)
    totals = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
                func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
            ).where(*conditions)
        )
    ).one()
    query = select(UsageRecord).where(*conditions).order_by(UsageRecord.id.desc())
    if cursor:
        (before,) = decode_cursor(cursor, CursorPart.INT64)
        query = query.where(UsageRecord.id < before)
    rows = list(await session.scalars(query.limit(limit + 1)))
    return UsagePage(
        items=[UsageRead.model_validate(r) for r in rows[:limit]],
        next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None,
        totals=UsageTotals(
            requests=int(totals[0]),
            prompt_tokens=int(totals[1]),
            completion_tokens=int(totals[2]),
        ),
    )


async def set_quota(session: AsyncSession, user_id: uuid.UUID, daily_tokens: int | None) -> None:
    if daily_tokens is None:
        await session.execute(delete(TokenQuota).where(TokenQuota.user_id == user_id))
        return
    quota = await session.get(TokenQuota, user_id)
    if quota is None:
        session.add(TokenQuota(user_id=user_id, daily_tokens=daily_tokens))
    else:
        quota.daily_tokens = daily_tokens
    await session.flush()


async def quota_read(session: AsyncSession, user_id: uuid.UUID, default: int) -> QuotaRead:
    return QuotaRead(
        user_id=user_id,
        daily_tokens=await quota_for(session, user_id, default),
        used_today=await used_today(session, user_id),
    )
