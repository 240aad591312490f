"""API keys: create, list, the one-time secret."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.auth.identity import Scope


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["my laptop"])
    scopes: list[Scope] = Field(
        default_factory=lambda: [Scope.READ, Scope.WRITE, Scope.INFERENCE],
        min_length=1,
        description="What the key may do: read, write, inference, admin (admins only).",
    )
    expires_at: datetime | None = Field(
        default=None, description="When the key stops working (ISO 8601 with timezone)."
    )


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    key_prefix: str = Field(description="The key's first characters, to recognise it.")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret. Shown once: store it now.")


class ResolveApiKey(BaseModel):
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class ResolvedApiKey(BaseModel):
    key_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    role: str
    scopes: list[str]
    expires_at: datetime | None
