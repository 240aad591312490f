"""Tables owned by the model hub, and the states and kinds their columns hold.

Each StrEnum below is the one spelling of its values in the hub (their strings are what the API
and the events carry); a CHECK constraint built from it keeps the column to them. The columns
stay plain strings (VARCHAR, read back as `str`): a StrEnum member compares equal to its value.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, one_of
from shared.model_files import ModelFormat


class Visibility(StrEnum):
    """Who sees a model: public (everyone, listed), unlisted (everyone with its id or ref, not
    listed) or private (its owner, admins and those granted access)."""

    PUBLIC = "public"
    PRIVATE = "private"
    UNLISTED = "unlisted"


class ModelSource(StrEnum):
    """Where a model's answers come from: uploaded weights, or an external provider."""

    UPLOAD = "upload"
    REMOTE = "remote"


class ModelStatus(StrEnum):
    """Derived from the model's versions (see CatalogService.refresh_status)."""

    READY = "ready"
    VALIDATING = "validating"
    FAILED = "failed"
    EMPTY = "empty"


class VersionStatus(StrEnum):
    """uploading -> validating -> ready | failed."""

    UPLOADING = "uploading"
    VALIDATING = "validating"
    READY = "ready"
    FAILED = "failed"


# A version's format is one of the formats the shared model-file policy serves.
VersionFormat = ModelFormat


class FineTuneStatus(StrEnum):
    """queued -> running -> succeeded | failed | cancelled (queued may go straight to cancelled)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_FINE_TUNE_STATUSES = frozenset(
    {FineTuneStatus.SUCCEEDED, FineTuneStatus.FAILED, FineTuneStatus.CANCELLED}
)


class FineTuneMethod(StrEnum):
    """full: every weight trains; lora: low-rank adapters (peft), merged into full weights."""

    FULL = "full"
    LORA = "lora"


class UploadSessionStatus(StrEnum):
    """open -> completed | aborted | expired."""

    OPEN = "open"
    COMPLETED = "completed"
    ABORTED = "aborted"
    EXPIRED = "expired"


class GrantLevel(StrEnum):
    """What a grant lets a user do with a model they do not own."""

    USE = "use"
    MANAGE = "manage"


def _now_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Provider(Base):
    """An external OpenAI-compatible endpoint a user registered."""

    __tablename__ = "providers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(100))
    base_url: Mapped[str] = mapped_column(String(2048))
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("owner_id", "slug"),
        Index("ix_models_tags", "tags", postgresql_using="gin"),
        Index("ix_models_created_at_id", "created_at", "id"),
        one_of("visibility", Visibility),
        one_of("source", ModelSource),
        one_of("status", ModelStatus),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    # Usernames never change, so the public reference `<owner>/<slug>` is stable.
    owner_username: Mapped[str] = mapped_column(String(32))
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(1000), default="")
    card: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    license: Mapped[str | None] = mapped_column(String(64))
    visibility: Mapped[str] = mapped_column(String(10), default=Visibility.PUBLIC)
    source: Mapped[str] = mapped_column(String(10), default=ModelSource.UPLOAD)
    # Derived from the versions (see CatalogService.refresh_status), kept for filtering.
    status: Mapped[str] = mapped_column(String(12), default=ModelStatus.EMPTY, index=True)
    default_params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    active_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL", use_alter=True)
    )
    provider_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    remote_model: Mapped[str | None] = mapped_column(String(200))
    # A remote model's context window (tokens), as its owner states it: conversation histories
    # sent to it are trimmed to fit. Uploaded models take theirs from their weights.
    context_length: Mapped[int | None] = mapped_column(Integer)
    # Owner-set bounds on what others spend (a public remote model spends the owner's key).
    daily_token_cap: Mapped[int | None] = mapped_column(BigInteger)
    user_daily_token_cap: Mapped[int | None] = mapped_column(BigInteger)
    likes_count: Mapped[int] = mapped_column(Integer, default=0)
    usage_count: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_generated: Mapped[int] = mapped_column(BigInteger, default=0)
    avg_latency_ms: Mapped[float | None] = mapped_column(Float)
    p95_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "number"),
        Index("ix_model_versions_status", "status"),
        one_of("status", VersionStatus),
        one_of("format", VersionFormat),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), index=True
    )
    # Denormalised for the daily upload quota, counted without a join.
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=VersionStatus.UPLOADING)
    error: Mapped[str | None] = mapped_column(Text)
    # Known once the upload is complete (a CHECK on NULL passes, as it should while uploading).
    format: Mapped[str | None] = mapped_column(String(12))
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    servable_prefix: Mapped[str | None] = mapped_column(String(300))
    # What inference loads: the uploaded files, or the safetensors a GGUF was converted to.
    servable_files: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Lineage of a fine-tuned version: the version it was trained from (NULL for uploads, or
    # once that version is deleted) and what made it (fine-tune id, dataset sha256,
    # hyperparameters, final losses).
    parent_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), index=True
    )
    lineage: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    validation_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    validated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelAccessGrant(Base):
    """A named user's right to use (or manage) a model they do not own."""

    __tablename__ = "model_access_grants"
    __table_args__ = (one_of("level", GrantLevel),)

    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    username: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = _now_column()


class ModelLike(Base):
    __tablename__ = "model_likes"

    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    created_at: Mapped[datetime] = _now_column()


class ModelUsageSample(Base):
    """Recent response times per model; p95 is computed over the latest samples."""

    __tablename__ = "model_usage_samples"
    __table_args__ = (Index("ix_model_usage_samples_model_id_id", "model_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    latency_ms: Mapped[float] = mapped_column(Float)
    tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now_column()


class FineTuneJob(Base):
    """One fine-tune of a model's version on an uploaded dataset, and how it went."""

    __tablename__ = "fine_tune_jobs"
    __table_args__ = (
        Index("ix_fine_tune_jobs_model_id_created_at", "model_id", "created_at"),
        Index("ix_fine_tune_jobs_owner_id_created_at", "owner_id", "created_at"),
        # The queue position and the sweeper read the unfinished jobs only.
        Index(
            "ix_fine_tune_jobs_unfinished",
            "status",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        one_of("status", FineTuneStatus),
        one_of("method", FineTuneMethod),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    owner_id: Mapped[uuid.UUID] = mapped_column()
    # The version trained from (the model's active one when the job was created).
    base_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    # Chosen when the job is created, so files of a version that never got its row (a crash
    # between storing the weights and committing) can be found and removed.
    result_version_id: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    result_version_created: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(12), default=FineTuneStatus.QUEUED)
    method: Mapped[str] = mapped_column(String(8))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # [{"name", "key", "size", "sha256", "examples", "tokens"}] for "train" and "validation".
    datasets: Mapped[dict[str, Any]] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # The latest progress, and one entry per reported step (the metrics history).
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # The worker running it: who, and when it last said it is alive (the sweeper's lease).
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class UploadSession(Base):
    """A resumable upload of one version: files announced up front, sent in parts, then
    completed into a version (`version_id`, chosen at creation, so the parts can be sent
    straight to where the version's files will lie).

    `model_id` has no foreign key on purpose: a deleted model leaves its sessions behind for
    the sweeper, which removes their parts from storage (an S3 multipart upload cannot be
    listed like an object, so nothing else would)."""

    __tablename__ = "upload_sessions"
    __table_args__ = (
        Index("ix_upload_sessions_owner_id_created_at", "owner_id", "created_at"),
        Index(
            "ix_upload_sessions_open_expires_at",
            "expires_at",
            postgresql_where=text("status = 'open'"),
        ),
        one_of("status", UploadSessionStatus),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(index=True)
    owner_id: Mapped[uuid.UUID] = mapped_column()
    version_id: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(12), default=UploadSessionStatus.OPEN)
    part_size: Mapped[int] = mapped_column(BigInteger)
    # [{"name", "size", "sha256" (or null), "key", "upload_id"}] in the order announced; `key`
    # is where the parts are assembled, `upload_id` the storage's id of the unfinished object.
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # Set while `complete` assembles and checks the files (parts are refused meanwhile).
    completing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UploadSessionPart(Base):
    """One received part of an upload session's file (a re-sent part replaces its row)."""

    __tablename__ = "upload_session_parts"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("upload_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    file_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    part_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    length: Mapped[int] = mapped_column(BigInteger)
    # CRC32C (hex) of the part: did it arrive intact (the file's SHA-256 is its identity).
    crc32c: Mapped[str] = mapped_column(String(8))
    # What the storage needs to assemble the part (S3's ETag).
    etag: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
