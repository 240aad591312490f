"""What other services learn about a model they are about to serve or show."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel


class ServableVersion(BaseModel):
    id: uuid.UUID
    number: int
    storage_prefix: str
    files: list[dict[str, Any]]
    details: dict[str, Any]


class RemoteEndpoint(BaseModel):
    provider_id: uuid.UUID
    base_url: str
    api_key: str | None
    remote_model: str


class ModelAccess(BaseModel):
    """The answer of the one access check: the caller may use this model, and how to serve it."""

    id: uuid.UUID
    ref: str
    owner_id: uuid.UUID
    visibility: str
    source: str
    status: str
    access: str  # "use" or "manage"
    default_params: dict[str, Any]
    system_prompt: str | None
    active_version: ServableVersion | None
    remote: RemoteEndpoint | None
