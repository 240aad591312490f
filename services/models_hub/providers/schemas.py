"""External OpenAI-compatible providers and the models they serve."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.models_hub.catalog.schemas import SLUG_PATTERN, TokenCap
from services.models_hub.models import Visibility
from shared.fields import Text, non_null_schema, refuse_null


class RemoteModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remote_model: Text = Field(min_length=1, max_length=200, description="The provider's model id.")
    name: Text | None = Field(
        default=None,
        max_length=100,
        description="Defaults to remote_model (its first 100 characters).",
    )
    slug: str | None = Field(default=None, pattern=SLUG_PATTERN)
    description: Text | None = Field(default=None, max_length=1000)
    visibility: Visibility = Field(
        default=Visibility.PRIVATE,
        description="Private by default: a public remote model lets everyone spend your "
        "provider key (set daily_token_cap / user_daily_token_cap to bound it).",
    )
    daily_token_cap: TokenCap | None = None
    user_daily_token_cap: TokenCap | None = None
    context_length: int | None = Field(
        default=None,
        ge=16,
        le=10_000_000,
        description="The provider model's context window in tokens: conversation histories "
        "sent to it are trimmed to fit. Unset: histories go whole.",
    )


class ProviderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=100)
    base_url: Text = Field(
        min_length=1,
        max_length=2048,
        examples=["https://api.example.com/v1"],
        description="The OpenAI-compatible base URL (the part before /chat/completions).",
    )
    api_key: Text | None = Field(
        default=None, max_length=4096, description="Stored encrypted; never returned."
    )
    models: list[RemoteModelCreate] = Field(default_factory=list, max_length=50)


class ProviderUpdate(BaseModel):
    """Only the fields sent change; a name or base URL cannot be null."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=non_null_schema("name", "base_url"))

    name: Text | None = Field(default=None, min_length=1, max_length=100)
    base_url: Text | None = Field(default=None, min_length=1, max_length=2048)
    api_key: Text | None = Field(default=None, max_length=4096, description="null removes the key.")

    _not_null = refuse_null("name", "base_url")


class ProviderRead(BaseModel):
    id: uuid.UUID
    name: str
    base_url: str
    has_api_key: bool
    model_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime


class ConnectionTest(BaseModel):
    ok: bool
    models: list[str] = Field(default_factory=list, description="What the provider lists.")
    status_code: int | None = None
    error: str | None = Field(default=None, description="The provider's own error, if any.")
    details: dict[str, Any] | None = None
