"""Request and response bodies of email verification and password reset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from shared.fields import Text

# The tokens are 43 URL-safe characters; the bound only keeps junk from reaching a hash.
Token = Annotated[
    Text, Field(min_length=1, max_length=200, description="The token from the mailed link.")
]


class VerifyEmailRequest(BaseModel):
    token: Token


class ForgotPasswordRequest(BaseModel):
    login: Text = Field(
        min_length=1,
        max_length=320,
        description="Username or email of the account.",
        examples=["ada@example.com"],
    )


class ResetPasswordRequest(BaseModel):
    token: Token
    # The length rules are settings (ACCOUNTS_PASSWORD_MIN_LENGTH / _MAX_LENGTH), as at
    # registration: the service checks them.
    password: Text = Field(
        min_length=1,
        max_length=1024,
        description="The new password; the rules of registration apply.",
    )


class MailAccepted(BaseModel):
    detail: str


class EmailVerified(BaseModel):
    email: str
    email_verified_at: datetime
