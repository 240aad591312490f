"""Profiles and follow lists."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    display_name: str | None
    bio: str | None
    avatar_url: str | None
    is_model_developer: bool
    created_at: datetime
    followers_count: int = 0
    following_count: int = 0
    followed_by_me: bool | None = Field(
        default=None, description="Whether the caller follows this user (null when anonymous)."
    )


class UserPrivate(UserPublic):
    email: str
    role: str


class UserUpdate(BaseModel):
    """Fields to change; omitted fields stay as they are, null clears an optional field."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=100)
    bio: str | None = Field(default=None, max_length=1000)
    avatar_url: AnyHttpUrl | None = Field(default=None, description="http(s) URL of an image.")
    is_model_developer: bool | None = None


class UserSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    display_name: str | None
    avatar_url: str | None


class FollowEntry(BaseModel):
    user: UserSummary
    followed_at: datetime


class FollowState(BaseModel):
    following: bool
    followers_count: int


class InternalUser(BaseModel):
    """What other services may learn about a user (internal API)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    role: str
    is_model_developer: bool
    is_banned: bool
