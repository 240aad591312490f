"""Models as clients create, change and read them."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
TAG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
Visibility = Literal["public", "private", "unlisted"]


class SamplingDefaults(BaseModel):
    """Defaults applied when a request does not set them."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=1000)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    repetition_penalty: float | None = Field(default=None, gt=0, le=10)
    stop: list[str] | None = Field(default=None, max_length=4)


class _ModelFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=1000)
    card: str | None = Field(default=None, max_length=100_000, description="Markdown.")
    tags: list[str] | None = Field(default=None, max_length=10)
    license: str | None = Field(default=None, max_length=64)
    visibility: Visibility | None = None
    default_params: SamplingDefaults | None = None
    system_prompt: str | None = Field(default=None, max_length=8000)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        if tags is None:
            return None
        cleaned = sorted({t.strip().lower() for t in tags})
        for tag in cleaned:
            if not re.match(TAG_PATTERN, tag):
                raise ValueError(f"tag '{tag}' must be lowercase letters, digits or '-'")
        return cleaned


class ModelCreate(_ModelFields):
    name: str = Field(min_length=1, max_length=100, examples=["Tiny Poet"])
    slug: str | None = Field(
        default=None,
        pattern=SLUG_PATTERN,
        description="Unique among your models; derived from the name when omitted.",
    )


class ModelUpdate(_ModelFields):
    """Only the fields sent change; null clears an optional field."""

    name: str | None = Field(default=None, min_length=1, max_length=100)


class Owner(BaseModel):
    id: uuid.UUID
    username: str


class ModelStats(BaseModel):
    usage_count: int
    tokens_generated: int
    avg_latency_ms: float | None
    p95_latency_ms: float | None
    last_used_at: datetime | None


class VersionSummary(BaseModel):
    id: uuid.UUID
    number: int
    status: str


class ModelRead(BaseModel):
    id: uuid.UUID
    ref: str = Field(description="`<owner>/<slug>`: the model's name in /v1 requests.")
    owner: Owner
    slug: str
    name: str
    description: str
    card: str
    tags: list[str]
    license: str | None
    visibility: str
    source: str
    status: str
    default_params: dict[str, Any]
    system_prompt: str | None
    active_version: VersionSummary | None
    provider_id: uuid.UUID | None
    remote_model: str | None
    likes_count: int
    liked_by_me: bool | None
    stats: ModelStats
    created_at: datetime
    updated_at: datetime


class ModelSort(StrEnum):
    RECENT = "recent"
    TRENDING = "trending"
    MOST_USED = "most_used"
    MOST_LIKED = "most_liked"


class LikeState(BaseModel):
    liked: bool
    likes_count: int


class GrantCreate(BaseModel):
    username: str = Field(min_length=1, max_length=32)
    level: Literal["use", "manage"] = "use"


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    username: str
    level: str
    created_at: datetime
