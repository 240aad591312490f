"""Profiles and follow lists."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    UrlConstraints,
)

from shared.auth.identity import Role
from shared.fields import Text, non_null_schema, refuse_null

# users.avatar_url is a VARCHAR(2048). The URL is stored normalised (a trailing slash, percent-
# escapes), which can be longer than what was sent: the schema leaves that room.
_AVATAR_URL_COLUMN = 2048


def _fits_column(url: AnyHttpUrl) -> AnyHttpUrl:
    if len(str(url)) > _AVATAR_URL_COLUMN:
        raise ValueError(f"is longer than {_AVATAR_URL_COLUMN} characters once normalised")
    return url


AvatarUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=2000), AfterValidator(_fits_column)]


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
    email_verified: bool = Field(
        description="Whether a mailed link verified the email (POST /api/v1/auth/email/verify)."
    )
    role: Role


class UserUpdate(BaseModel):
    """Fields to change; omitted fields stay as they are, null clears an optional field."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=non_null_schema("is_model_developer")
    )

    display_name: Text | None = Field(default=None, max_length=100)
    bio: Text | None = Field(default=None, max_length=1000)
    avatar_url: AvatarUrl | None = Field(default=None, description="http(s) URL of an image.")
    is_model_developer: StrictBool | None = Field(default=None, description="true or false.")

    _not_null = refuse_null("is_model_developer")


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
    role: Role
    is_model_developer: bool
    is_banned: bool
    email_verified: bool
