"""Tables owned by the inference service, and the fixed vocabularies of their columns."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
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


# ---- conversations -------------------------------------------------------------------------------
# Full-text search uses the 'simple' configuration: no stemming and no stop words, so it works
# alike for every language people write in; the generated tsvector columns carry GIN indexes.
SEARCH_CONFIG = "simple"


class ParticipantRole(StrEnum):
    """What a person the owner shared a conversation with may do."""

    READ = "read"
    WRITE = "write"  # read, and send messages


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(StrEnum):
    """streaming -> complete | cancelled (stopped) | failed (engine error, or its owner died)."""

    STREAMING = "streaming"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Conversation(Base):
    """A person's chat with models; its messages form a tree (regenerations are siblings)."""

    __tablename__ = "conversations"
    # Timestamps come back with the INSERT/UPDATE itself (RETURNING), not a second query.
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        Index("ix_conversations_owner_updated", "owner_id", "updated_at", "id"),
        Index("ix_conversations_search", "search", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    # The model later turns use (a switch changes it; each message keeps its own).
    model_id: Mapped[uuid.UUID] = mapped_column(index=True)
    model_ref: Mapped[str] = mapped_column(String(100))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    # Default sampling parameters of its turns (a message may override them).
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    template_id: Mapped[uuid.UUID | None] = mapped_column()
    # The leaf of the branch the client chose: the context of the next turn is its path.
    current_message_id: Mapped[uuid.UUID | None] = mapped_column()
    # Soft delete: restorable until the purge job removes it (and its attachments).
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    # Only queries use it: never loaded with the row.
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(f"to_tsvector('{SEARCH_CONFIG}', title)", persisted=True),
        deferred=True,
    )


class ConversationParticipant(Base):
    """Someone the owner shared the conversation with."""

    __tablename__ = "conversation_participants"
    __table_args__ = (one_of("role", ParticipantRole),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    # As accounts spelled it when the owner added them (usernames do not change).
    username: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(10))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Message(Base):
    """One turn. Assistant messages keep what produced them and how it went."""

    __tablename__ = "messages"
    # Timestamps come back with the INSERT/UPDATE itself (RETURNING), not a second query.
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        Index("ix_messages_conversation_created", "conversation_id", "created_at", "id"),
        Index("ix_messages_search", "search", postgresql_using="gin"),
        Index("ix_messages_status_updated", "status", "updated_at"),
        one_of("role", MessageRole),
        one_of("status", MessageStatus),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    # The tree: None for a first turn; siblings share a parent.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(10))
    # Who sent it (a user turn), or who asked for it (an assistant turn).
    author_id: Mapped[uuid.UUID] = mapped_column()
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12), default=MessageStatus.COMPLETE)
    error: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    model_ref: Mapped[str | None] = mapped_column(String(100))
    model_version_id: Mapped[uuid.UUID | None] = mapped_column()
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    time_to_first_token_ms: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    finish_reason: Mapped[str | None] = mapped_column(String(20))
    # Oldest turns left out of the context to fit the model's window.
    trimmed_messages: Mapped[int] = mapped_column(Integer, default=0)
    trimmed_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Only queries use it: never loaded with the row.
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(f"to_tsvector('{SEARCH_CONFIG}', content)", persisted=True),
        deferred=True,
    )


class MessageFeedback(Base):
    """A person's thumbs up (+1) or down (-1) on an answer, with an optional comment."""

    __tablename__ = "message_feedback"
    __table_args__ = (CheckConstraint("rating IN (-1, 1)", name="rating_valid"),)

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


# ---- conversation extras: activity records, prompt templates, attachments ------------------------


class ActivityAction(StrEnum):
    """The platform instructions an activity record can hold."""

    CONVERSATION_CREATED = "conversation.created"
    MESSAGE_SENT = "message.sent"
    MESSAGE_REGENERATED = "message.regenerated"
    MODEL_SWITCHED = "model.switched"
    TEMPLATE_USED = "template.used"
    CONVERSATION_EXPORTED = "conversation.exported"
    CONVERSATION_DELETED = "conversation.deleted"


class ActivityRecord(Base):
    """One instruction a person gave the platform (kept while their recording is on)."""

    __tablename__ = "activity_records"
    __table_args__ = (
        Index("ix_activity_records_user_id_id", "user_id", "id"),
        Index("ix_activity_records_created_at", "created_at"),
        one_of("action", ActivityAction),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column()
    action: Mapped[str] = mapped_column(String(40))
    model_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ActivitySetting(Base):
    """A person's choice about recording; no row means the default (recording on)."""

    __tablename__ = "activity_settings"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    recording: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PromptTemplate(Base):
    """A user's own prompt template (the built-in ones live in code, not in this table)."""

    __tablename__ = "prompt_templates"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # The declared variable names, in the order the owner gave them.
    variables: Mapped[list[str]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class AttachmentKind(StrEnum):
    """What an attachment is, recognised from its content."""

    TXT = "txt"
    MD = "md"
    JSON = "json"
    CSV = "csv"
    DOCX = "docx"
    PDF = "pdf"


class TokenCounter(StrEnum):
    """How an attachment's tokens were counted."""

    MODEL = "model"  # the conversation model's own tokenizer
    ESTIMATE = "estimate"  # remote models: about 4 characters a token


class Attachment(Base):
    """A file given to a conversation as context: the original in object storage, its text here."""

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_conversation_created", "conversation_id", "created_at"),
        one_of("kind", AttachmentKind),
        one_of("token_counter", TokenCounter),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    uploader_id: Mapped[uuid.UUID] = mapped_column()
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(10))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300))
    # The extracted text as it goes into the context (already cut to the token setting).
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer)
    # Tokens of everything extracted, before the cut.
    extracted_tokens: Mapped[int] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean)
    token_counter: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EvaluationStatus(StrEnum):
    """Where an evaluation (or a prompt-lab A/B run) is."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Evaluation(Base):
    """An evaluation report of one model version: what was asked, and the report once done."""

    __tablename__ = "evaluations"
    __table_args__ = (
        Index("ix_evaluations_owner_created", "owner_id", "created_at"),
        Index("ix_evaluations_model_created", "model_id", "created_at"),
        one_of("status", EvaluationStatus),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column()
    model_id: Mapped[uuid.UUID] = mapped_column()
    model_ref: Mapped[str] = mapped_column(String(100))
    # None for a model served by an external provider (no versions of ours).
    version_id: Mapped[uuid.UUID | None] = mapped_column()
    version_number: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=EvaluationStatus.QUEUED)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    # Sampling settings and repeats, as asked.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # The prompt sets in full (built-in ones copied): a report always names what it ran.
    prompt_sets: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    heldout_text: Mapped[str | None] = mapped_column(Text)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ABArm(StrEnum):
    ORIGINAL = "original"
    REWRITE = "rewrite"


class PromptABRun(Base):
    """A prompt-lab A/B test: the original prompt against a rewrite, on one or more models."""

    __tablename__ = "prompt_ab_runs"
    __table_args__ = (
        Index("ix_prompt_ab_runs_owner_created", "owner_id", "created_at"),
        one_of("status", EvaluationStatus),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column()
    original: Mapped[str] = mapped_column(Text)
    rewrite: Mapped[str] = mapped_column(Text)
    models: Mapped[list[str]] = mapped_column(JSONB, default=list)  # refs, as asked
    samples: Mapped[int] = mapped_column(Integer)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(12), default=EvaluationStatus.QUEUED)
    # Per model and arm: the metrics' means, and the rewrite's difference from the original.
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PromptABOutput(Base):
    """One stored answer of an A/B run, with its metrics."""

    __tablename__ = "prompt_ab_outputs"
    __table_args__ = (
        # A retried job writes each answer once.
        UniqueConstraint("run_id", "model_ref", "arm", "sample"),
        one_of("arm", ABArm),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("prompt_ab_runs.id", ondelete="CASCADE"), index=True
    )
    model_ref: Mapped[str] = mapped_column(String(100))
    arm: Mapped[str] = mapped_column(String(10))
    sample: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
