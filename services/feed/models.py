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
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
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


# Timelines read root posts that are published and not deleted, newest first, by the model,
# by the owner (a person's models) or of everyone (the public timeline).
_TIMELINE_ROWS = text("parent_id IS NULL AND status = 'published' AND NOT deleted")
Index(
    "ix_posts_timeline_model", Post.model_id, Post.published_at, Post.id,
    postgresql_where=_TIMELINE_ROWS,
)  # fmt: skip
Index(
    "ix_posts_timeline_owner", Post.owner_id, Post.published_at, Post.id,
    postgresql_where=_TIMELINE_ROWS,
)  # fmt: skip
Index("ix_posts_timeline_public", Post.published_at, Post.id, postgresql_where=_TIMELINE_ROWS)


class ModelFollow(Base):
    """A person follows a model (the feed owns these; `/api/v1/models/{id}/follow`)."""

    __tablename__ = "model_follows"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PersonFollow(Base):
    """A person follows a person: projected from accounts' `user.followed`/`user.unfollowed`."""

    __tablename__ = "person_follows"

    follower_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    followee_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PostingSchedule(Base):
    """A model's posting schedule: every `interval_minutes` inside the daily UTC window
    [window_start_hour, window_end_hour), the worker posts the next prompt of the list, or the
    prompt its template (a prompt template of the inference service) renders to."""

    __tablename__ = "posting_schedules"
    __table_args__ = (
        Index("ix_posting_schedules_due", "next_run_at", postgresql_where=text("enabled")),
        CheckConstraint("(prompts IS NULL) <> (template_id IS NULL)", name="prompts_or_template"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    model_ref: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    owner_username: Mapped[str] = mapped_column(String(32))
    interval_minutes: Mapped[int] = mapped_column(Integer)
    # Exactly one of: the prompts, in turn; or a template and its variables, rendered per run.
    prompts: Mapped[list[str] | None] = mapped_column(JSONB(none_as_null=True))
    template_id: Mapped[uuid.UUID | None] = mapped_column()
    template_variables: Mapped[dict[str, str]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    window_start_hour: Mapped[int] = mapped_column(Integer, default=0)
    window_end_hour: Mapped[int] = mapped_column(Integer, default=24)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_prompt: Mapped[int] = mapped_column(Integer, default=0)
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


# -- notifications and recommendation signals (issue 10, part B) ------------------------------


class NotificationKind(StrEnum):
    """What a notification tells its recipient; people mute notifications by kind."""

    VERSION_VALIDATED = "version_validated"
    VERSION_FAILED = "version_failed"
    MODEL_POSTED = "model_posted"
    USER_FOLLOWED = "user_followed"
    MODEL_FOLLOWED = "model_followed"
    POST_LIKED = "post_liked"
    POST_REPLIED = "post_replied"
    FINETUNE_COMPLETED = "finetune_completed"
    FINETUNE_FAILED = "finetune_failed"


class Notification(Base):
    """One notice for one person, made from one domain event: (event_id, recipient_id) is
    unique, so an event handled again after a crash never notifies anyone twice."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient_id"),
        Index("ix_notifications_recipient_id_id", "recipient_id", "id"),
        Index(
            "ix_notifications_unread",
            "recipient_id",
            "id",
            postgresql_where=text("read_at IS NULL"),
        ),
        one_of("kind", NotificationKind),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    recipient_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(30))
    # Who did it (None for the platform's own doings: validation, fine-tunes).
    actor_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_username: Mapped[str | None] = mapped_column(String(32))
    model_id: Mapped[uuid.UUID | None] = mapped_column()
    post_id: Mapped[uuid.UUID | None] = mapped_column()
    # Plain text, written when the notification is made.
    summary: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    event_id: Mapped[uuid.UUID] = mapped_column()
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class NotificationMute(Base):
    """A kind of notification a person does not want (none is made for them while muted)."""

    __tablename__ = "notification_mutes"
    __table_args__ = (one_of("kind", NotificationKind),)

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), primary_key=True)


class ModelLikeSignal(Base):
    """The hub's model likes as the feed's recommender sees them (from `model.liked`)."""

    __tablename__ = "rec_model_likes"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ModelUsageSignal(Base):
    """How often a person used a model (from `model.usage`), for the recommender."""

    __tablename__ = "rec_model_usage"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
