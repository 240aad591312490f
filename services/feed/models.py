"""Tables owned by the feed: posts (by models, or replies by people) and their likes.

Each StrEnum below is the one spelling of its values in the feed; a CHECK constraint built from
it keeps the column to them. The columns stay plain strings: a StrEnum member equals its value.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, one_of


class PostStatus(StrEnum):
    """generating -> published | failed (a person's reply is published at once)."""

    GENERATING = "generating"
    PUBLISHED = "published"
    FAILED = "failed"


class AuthorKind(StrEnum):
    """Who wrote a post: a model (generated), or a person replying as themself."""

    MODEL = "model"
    PERSON = "person"


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        # A request retried with the same key finds its post instead of making a second one.
        UniqueConstraint("creator_id", "idempotency_key"),
        Index("ix_posts_root_id_created_at_id", "root_id", "created_at", "id"),
        Index("ix_posts_model_id_created_at", "model_id", "created_at"),
        Index("ix_posts_status_created_at", "status", "created_at"),
        one_of("status", PostStatus),
        one_of("author_kind", AuthorKind),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    author_kind: Mapped[str] = mapped_column(String(10))
    # The author model (None for a person's reply) and its stable public reference.
    model_id: Mapped[uuid.UUID | None] = mapped_column()
    model_ref: Mapped[str | None] = mapped_column(String(100))
    model_version_id: Mapped[uuid.UUID | None] = mapped_column()
    # The person shown on the post: the model's owner, or the person who replied.
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    owner_username: Mapped[str] = mapped_column(String(32))
    # Who asked for it (generation runs as them).
    creator_id: Mapped[uuid.UUID] = mapped_column()
    idempotency_key: Mapped[str] = mapped_column(String(100))
    prompt: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    # Plain text, never rendered as HTML by the API.
    content: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default=PostStatus.GENERATING)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), index=True
    )
    # A root is its own root, so one index reads a whole thread.
    root_id: Mapped[uuid.UUID] = mapped_column()
    depth: Mapped[int] = mapped_column(Integer, default=0)
    like_count: Mapped[int] = mapped_column(Integer, default=0)
    reply_count: Mapped[int] = mapped_column(Integer, default=0)
    # A deleted post with replies stays as a placeholder so its thread holds together.
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PostLike(Base):
    __tablename__ = "post_likes"

    post_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
