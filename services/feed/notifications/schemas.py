"""What the notifications endpoints accept and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.feed.models import NotificationKind
from shared.pagination import Page


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: NotificationKind
    summary: str = Field(description="Plain text; never HTML.")
    actor_id: uuid.UUID | None
    actor_username: str | None
    model_id: uuid.UUID | None
    post_id: uuid.UUID | None
    payload: dict[str, Any] = Field(description="The subject's details (ids, refs, errors).")
    read: bool
    read_at: datetime | None
    created_at: datetime


NotificationPage = Page[NotificationRead]


class UnreadCount(BaseModel):
    unread: int


class MarkedRead(BaseModel):
    marked: int = Field(description="How many notifications this call marked read.")


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    muted: list[NotificationKind] = Field(
        max_length=len(NotificationKind),
        description="The kinds you do not want; every other kind is delivered.",
    )


class Preferences(BaseModel):
    muted: list[NotificationKind]
    kinds: list[NotificationKind] = Field(description="Every kind there is.")
