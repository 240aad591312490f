"""API keys: create, list, the one-time secret."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.auth.identity import Role, Scope
from shared.fields import Text, Timestamp


class ApiKeyCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=100, examples=["my laptop"])
    scopes: list[Scope] = Field(
        default_factory=lambda: [Scope.READ, Scope.WRITE, Scope.INFERENCE],
        min_length=1,
        description="What the key may do: read, write, inference, admin (admins only).",
    )
    # "In the future" has no JSON Schema keyword: a past moment is a 422 (documented as 4XX).
    expires_at: Timestamp | None = Field(
        default=None,
        description="When the key stops working: a future moment, ISO 8601 with timezone.",
    )

    @field_validator("expires_at")
    @classmethod
    def _in_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    key_prefix: str = Field(description="The key's first characters, to recognise it.")
    scopes: list[Scope]
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
    role: Role
    scopes: list[Scope]
    expires_at: datetime | None
