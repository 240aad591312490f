"""Request and response bodies of registration, login and token endpoints."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from pydantic import BaseModel, EmailStr, Field, field_validator

from shared.fields import Text

USERNAME_PATTERN = r"^[A-Za-z0-9_]{3,32}$"
RESERVED_USERNAMES = frozenset({"me", "admin", "api", "root", "system", "llmnet", "settings"})


class RegisterRequest(BaseModel):
    username: str = Field(
        pattern=USERNAME_PATTERN,
        description="3-32 letters, digits or underscores; case-insensitive.",
        examples=["ada_l"],
    )
    email: EmailStr = Field(examples=["ada@example.com"])
    # The length rules are settings (ACCOUNTS_PASSWORD_MIN_LENGTH / _MAX_LENGTH): the service
    # checks them and the accounts app writes them into its document (document_bounds).
    password: Text = Field(
        min_length=1,
        max_length=1024,
        description="Letters mixed with digits or symbols, at least 5 distinct characters, "
        "not containing the username.",
    )
    display_name: Text | None = Field(default=None, max_length=100)

    @field_validator("username")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() in RESERVED_USERNAMES:
            raise ValueError(f"the username '{value}' is reserved; choose another")
        return value.lower()

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str) -> str:
        return value.lower()


class LoginRequest(BaseModel):
    username: Text = Field(min_length=1, max_length=320, description="Username or email.")
    password: Text = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    refresh_token: Text = Field(min_length=1, max_length=4096)


class LogoutRequest(BaseModel):
    refresh_token: Text = Field(min_length=1, max_length=4096)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class RegisteredUser(BaseModel):
    id: uuid.UUID
    username: str
    email: str
    display_name: str | None
    created_at: datetime


_LETTER = re.compile(r"[A-Za-z]")
_NON_LETTER = re.compile(r"[^A-Za-z]")


def password_problem(
    password: str, username: str, *, min_length: int, max_length: int
) -> str | None:
    """Why a password is too weak, or None when it is acceptable."""
    if len(password) < min_length:
        return f"must be at least {min_length} characters long"
    if len(password) > max_length:
        return f"must be at most {max_length} characters long"
    if not (_LETTER.search(password) and _NON_LETTER.search(password)):
        return "must mix letters with digits or symbols"
    if username and username.lower() in password.lower():
        return "must not contain the username"
    if len(set(password)) < 5:
        return "is too repetitive; use more distinct characters"
    return None
