"""The usage ledger: what every completion cost, per user and model; daily token quotas.

Each completion is written once, when it ends (finished, cut short by the client, or
failed), together with a `model.usage` event the model hub turns into the model's
statistics: both in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.inference.models import (
    TokenQuota,
    UsageEndpoint,
    UsageRecord,
    UsageSource,
    UsageStatus,
)
from services.inference.usage import repository
from services.inference.usage.schemas import (
    DailyUsage,
    ModelUsageSeries,
    QuotaRead,
    UsagePage,
    UsageRead,
    UsageTotals,
)
from shared.auth.identity import Identity
from shared.db import session_scope, utcnow
from shared.errors import TooManyRequests
from shared.events import record_event
from shared.models_client import ModelAccess


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
    status: UsageStatus


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Whose use of which model a ledger row records."""

    user_id: uuid.UUID
    api_key_id: str | None
    model_id: uuid.UUID
    model_ref: str
    source: UsageSource
    endpoint: UsageEndpoint


def usage_source(model: ModelAccess) -> UsageSource:
    """Models the hub marks remote run at their provider; every other kind runs here."""
    return UsageSource.REMOTE if model.source == UsageSource.REMOTE else UsageSource.LOCAL


def usage_row(caller: Identity, model: ModelAccess, endpoint: UsageEndpoint) -> UsageRow:
    return UsageRow(
        user_id=caller.user_id,
        api_key_id=caller.api_key_id,
        model_id=model.id,
        model_ref=model.ref,
        source=usage_source(model),
        endpoint=endpoint,
    )


def _day_start() -> datetime:
    now = utcnow()
    return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)


def _spent(message: str, error: type[TooManyRequests] = QuotaExceeded) -> TooManyRequests:
    tomorrow = _day_start() + timedelta(days=1)
    return error(
        f"{message}; it resets at {tomorrow.isoformat()}.",
        retry_after=int((tomorrow - utcnow()).total_seconds()) + 1,
    )


class UsageService:
    async def used_today(self, session: AsyncSession, user_id: uuid.UUID) -> int:
        return await repository.tokens_used(session, _day_start(), user_id=user_id)

    async def quota_for(
        self, session: AsyncSession, user_id: uuid.UUID, default: int
    ) -> int | None:
        """The user's daily token quota: an admin's override, else the default (0: none)."""
        override = await repository.get_quota(session, user_id)
        if override is not None:
            return override.daily_tokens
        return default or None

    async def check_quota(
        self, session: AsyncSession, caller: Identity, default: int, model: ModelAccess
    ) -> None:
        """Before any work starts: 429 once the caller's tokens of the day are spent, or what
        the model's owner lets others spend on it (the owner is bound only by their own
        quota)."""
        since = _day_start()
        quota = await self.quota_for(session, caller.user_id, default)
        if quota is not None:
            used = await repository.tokens_used(session, since, user_id=caller.user_id)
            if used >= quota:
                raise _spent(f"Your daily quota of {quota} tokens is spent ({used} used)")
        if caller.user_id == model.owner_id:
            return
        caps: list[tuple[int | None, dict[str, uuid.UUID], str]] = [
            (
                model.user_daily_token_cap,
                {"user_id": caller.user_id},
                "allows each user {cap} tokens a day, and you have used {used}",
            ),
            (
                model.daily_token_cap,
                {"except_user": model.owner_id},
                "allows {cap} tokens a day to all users together, and they are spent",
            ),
        ]
        for cap, whose, rule in caps:
            if cap is None:
                continue
            used = await repository.tokens_used(session, since, model_id=model.id, **whose)
            if used >= cap:
                message = f"{model.ref} {rule.format(cap=cap, used=used)}"
                raise _spent(message, ModelCapReached)

    async def record_row(
        self, sessionmaker: async_sessionmaker[AsyncSession], row: UsageRow, usage: Usage
    ) -> None:
        """The ledger row and the `model.usage` event of one completion, in one transaction."""
        async with session_scope(sessionmaker) as session:
            self.add_row(session, row, usage)

    def add_row(self, session: AsyncSession, row: UsageRow, usage: Usage) -> None:
        """The ledger row and its `model.usage` event, written with the caller's transaction
        (an answer's goes with the message's final state: both or neither)."""
        session.add(
            UsageRecord(
                user_id=row.user_id,
                api_key_id=row.api_key_id,
                model_id=row.model_id,
                model_ref=row.model_ref,
                source=row.source,
                endpoint=row.endpoint,
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
                "model_id": str(row.model_id),
                "user_id": str(row.user_id),
                "latency_ms": usage.latency_ms,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "status": str(usage.status),
            },
            source="inference",
        )

    async def ledger_page(
        self,
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
        conditions = repository.ledger_filter(user_id=owner, model_id=model_id, since=since)
        requests, prompt_tokens, completion_tokens = await repository.ledger_totals(
            session, conditions
        )
        rows, next_cursor = await repository.ledger_page(
            session, conditions, cursor=cursor, limit=limit
        )
        return UsagePage(
            items=[UsageRead.model_validate(r) for r in rows],
            next_cursor=next_cursor,
            totals=UsageTotals(
                requests=requests, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            ),
        )

    async def model_series(
        self, session: AsyncSession, model: ModelAccess, days: int
    ) -> ModelUsageSeries:
        """The model's use over the last `days` UTC days (today included), one entry a day."""
        first = _day_start() - timedelta(days=days - 1)
        found = await repository.daily_series(session, model.id, first)
        series = []
        for offset in range(days):
            day = (first + timedelta(days=offset)).date()
            requests, prompt, completion, p50, p95 = found.get(day, (0, 0, 0, None, None))
            series.append(
                DailyUsage(
                    day=day,
                    requests=requests,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    p50_latency_ms=p50,
                    p95_latency_ms=p95,
                )
            )
        return ModelUsageSeries(model_id=model.id, model_ref=model.ref, days=series)

    async def set_quota(
        self, session: AsyncSession, user_id: uuid.UUID, daily_tokens: int | None
    ) -> None:
        """Override the user's daily quota; None returns them to the default."""
        if daily_tokens is None:
            await repository.delete_quota(session, user_id)
            return
        quota = await repository.get_quota(session, user_id)
        if quota is None:
            session.add(TokenQuota(user_id=user_id, daily_tokens=daily_tokens))
        else:
            quota.daily_tokens = daily_tokens
        await session.flush()

    async def quota_read(
        self, session: AsyncSession, user_id: uuid.UUID, default: int
    ) -> QuotaRead:
        return QuotaRead(
            user_id=user_id,
            daily_tokens=await self.quota_for(session, user_id, default),
            used_today=await self.used_today(session, user_id),
        )


usage_service = UsageService()
