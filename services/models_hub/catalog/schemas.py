"""Models as clients create, change and read them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, field_validator

from services.models_hub.models import (
    GrantLevel,
    ModelSource,
    ModelStatus,
    VersionStatus,
    Visibility,
)
from shared.fields import JSON_INT_MAX, JSON_INTEGER, Text, non_null_schema, refuse_null

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# Tags are stored lower-case; what a client sends may be in either case.
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$"
USERNAME_PATTERN = r"^[A-Za-z0-9_]{1,32}$"
Tag = Annotated[str, Field(pattern=TAG_PATTERN, description="Letters, digits or '-'.")]
StopSequence = Annotated[Text, Field(min_length=1)]
TOKEN_CAP_MAX = JSON_INT_MAX  # fits the BIGINT columns with room for sums
TokenCap = Annotated[int, Field(ge=1, le=TOKEN_CAP_MAX), JSON_INTEGER]


class SamplingDefaults(BaseModel):
    """Defaults applied when a request does not set them."""

    model_config = ConfigDict(extra="forbid")

    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    top_p: StrictFloat | None = Field(default=None, gt=0, le=1)
    top_k: Annotated[int, Field(ge=0, le=1000), JSON_INTEGER] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=32768), JSON_INTEGER] | None = None
    repetition_penalty: StrictFloat | None = Field(default=None, gt=0, le=10)
    stop: list[StopSequence] | None = Field(default=None, max_length=4)


class _ModelFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Text | None = Field(default=None, max_length=1000)
    card: Text | None = Field(default=None, max_length=100_000, description="Markdown.")
    tags: list[Tag] | None = Field(default=None, max_length=10)
    license: Text | None = Field(default=None, max_length=64)
    visibility: Visibility | None = Field(
        default=None,
        description="public, unlisted or private. A remote model is private unless made "
        "public: then everyone who uses it spends the owner's provider key (bound it with "
        "the token caps).",
    )
    default_params: SamplingDefaults | None = None
    system_prompt: Text | None = Field(default=None, max_length=8000)
    daily_token_cap: TokenCap | None = Field(
        default=None,
        description="Tokens per day everyone but the owner may spend on this model together "
        "(429 past it); null: no cap.",
    )
    user_daily_token_cap: TokenCap | None = Field(
        default=None,
        description="Tokens per day each user but the owner may spend on this model; null: no cap.",
    )

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else sorted({t.lower() for t in tags})


class ModelCreate(_ModelFields):
    name: Text = Field(min_length=1, max_length=100, examples=["Tiny Poet"])
    slug: str | None = Field(
        default=None,
        pattern=SLUG_PATTERN,
        description="Unique among your models; derived from the name when omitted.",
    )


class ModelUpdate(_ModelFields):
    """Only the fields sent change; null clears an optional field (name and visibility have
    no "cleared": null is refused)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=non_null_schema("name", "visibility")
    )

    name: Text | None = Field(default=None, min_length=1, max_length=100)
    context_length: int | None = Field(
        default=None,
        ge=16,
        le=10_000_000,
        description="Only for a model served by an external provider (422 otherwise: an "
        "uploaded model's comes from its weights): its context window in tokens, so "
        "conversation histories sent to it are trimmed to fit.",
    )

    _not_null = refuse_null("name", "visibility")


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
    status: VersionStatus


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
    visibility: Visibility
    source: ModelSource
    status: ModelStatus
    default_params: dict[str, Any]
    system_prompt: str | None
    active_version: VersionSummary | None
    provider_id: uuid.UUID | None
    remote_model: str | None
    context_length: int | None
    daily_token_cap: int | None
    user_daily_token_cap: int | None
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
    username: str = Field(pattern=USERNAME_PATTERN, description="Who gets access.")
    level: GrantLevel = GrantLevel.USE


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    username: str
    level: GrantLevel
    created_at: datetime
