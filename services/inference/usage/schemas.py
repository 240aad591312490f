"""The usage ledger as clients read it, and quotas."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.inference.models import UsageEndpoint, UsageSource, UsageStatus
from shared.fields import JSON_INT_MAX, JSON_INTEGER
from shared.pagination import Page


class UsageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: uuid.UUID
    model_id: uuid.UUID
    model_ref: str
    source: UsageSource
    endpoint: UsageEndpoint
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    status: UsageStatus
    created_at: datetime


class UsageTotals(BaseModel):
    requests: int
    prompt_tokens: int
    completion_tokens: int


class UsagePage(Page[UsageRead]):
    totals: UsageTotals


class QuotaUpdate(BaseModel):
    # token_quotas.daily_tokens is a BIGINT; JSON_INT_MAX fits it.
    daily_tokens: Annotated[int, Field(ge=0, le=JSON_INT_MAX), JSON_INTEGER] | None = Field(
        description="Tokens per day; null returns the user to the default setting.",
    )


class QuotaRead(BaseModel):
    user_id: uuid.UUID
    daily_tokens: int | None = Field(description="null: unlimited.")
    used_today: int


class DailyUsage(BaseModel):
    day: date = Field(description="A UTC day.")
    requests: int
    prompt_tokens: int
    completion_tokens: int
    p50_latency_ms: float | None = Field(description="null: no request that day.")
    p95_latency_ms: float | None


class ModelUsageSeries(BaseModel):
    """Everyone's use of one model per day, oldest day first, days without use included."""

    model_id: uuid.UUID
    model_ref: str
    days: list[DailyUsage]
