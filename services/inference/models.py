"""Tables owned by the inference service, and the fixed vocabularies of their columns."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, one_of


class UsageStatus(StrEnum):
    """How a completion ended."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"  # the client went away
    FAILED = "failed"


class UsageSource(StrEnum):
    """Who ran the model: our engine, or an external provider we proxied."""

    LOCAL = "local"
    REMOTE = "remote"


class UsageEndpoint(StrEnum):
    """Which OpenAI-compatible endpoint was called (the `/v1/...` path, dotted)."""

    CHAT_COMPLETIONS = "chat.completions"
    COMPLETIONS = "completions"


class UsageRecord(Base):
    """One completion: who used which model, how many tokens, how long it took."""

    __tablename__ = "usage_ledger"
    __table_args__ = (
        Index("ix_usage_ledger_user_created", "user_id", "created_at"),
        # Model token caps sum a model's usage of the day.
        Index("ix_usage_ledger_model_created", "model_id", "created_at"),
        one_of("source", UsageSource),
        one_of("endpoint", UsageEndpoint),
        one_of("status", UsageStatus),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID]
    api_key_id: Mapped[str | None] = mapped_column(String(64))
    model_id: Mapped[uuid.UUID] = mapped_column(index=True)
    model_ref: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(10))
    endpoint: Mapped[str] = mapped_column(String(40))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TokenQuota(Base):
    """A per-user daily token quota set by an admin (overrides the default setting)."""

    __tablename__ = "token_quotas"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    daily_tokens: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
