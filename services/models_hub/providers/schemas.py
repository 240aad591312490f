"""External OpenAI-compatible providers and the models they serve."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.models_hub.catalog.schemas import SLUG_PATTERN, Visibility


class RemoteModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remote_model: str = Field(min_length=1, max_length=200, description="The provider's model id.")
    name: str | None = Field(default=None, max_length=100, description="Defaults to remote_model.")
    slug: str | None = Field(default=None, pattern=SLUG_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    visibility: Visibility = "public"


class ProviderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    base_url: str = Field(
        min_length=1,
        max_length=2048,
        examples=["https://api.example.com/v1"],
        description="The OpenAI-compatible base URL (the part before /chat/completions).",
    )
    api_key: str | None = Field(
        default=None, max_length=4096, description="Stored encrypted; never returned."
    )
    models: list[RemoteModelCreate] = Field(default_factory=list, max_length=50)


class ProviderUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    base_url: str | None = Field(default=None, min_length=1, max_length=2048)
    api_key: str | None = Field(default=None, max_length=4096, description="null removes the key.")


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
