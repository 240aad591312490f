"""Email verification and password reset: ask for a mail, then use its link's token."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from services.accounts.deps import ContextDep
from services.accounts.recovery.schemas import (
    EmailVerified,
    ForgotPasswordRequest,
    MailAccepted,
    ResetPasswordRequest,
    VerifyEmailRequest,
)
from services.accounts.recovery.service import recovery_service
from shared.auth.identity import CurrentUser, client_ip
from shared.db import SessionDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/email/verification",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MailAccepted,
    summary="Mail yourself a new email verification link",
)
async def request_verification(
    user: CurrentUser, session: SessionDep, ctx: ContextDep
) -> MailAccepted:
    return await recovery_service.request_verification(session, ctx, user.user_id)


@router.post(
    "/email/verify",
    response_model=EmailVerified,
    summary="Verify your email with the token of a mailed link",
)
async def verify_email(
    body: VerifyEmailRequest, request: Request, session: SessionDep, ctx: ContextDep
) -> EmailVerified:
    return await recovery_service.confirm_verification(session, ctx, body.token, client_ip(request))


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MailAccepted,
    summary="Mail a password reset link",
    description="Always 202 with the same body, whether or not an account matches.",
)
async def forgot_password(
    body: ForgotPasswordRequest, request: Request, session: SessionDep, ctx: ContextDep
) -> MailAccepted:
    return await recovery_service.forgot_password(session, ctx, body.login, client_ip(request))


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with the token of a mailed link; logs out everywhere",
)
async def reset_password(
    body: ResetPasswordRequest, request: Request, session: SessionDep, ctx: ContextDep
) -> None:
    await recovery_service.reset_password(
        session, ctx, body.token, body.password, client_ip(request)
    )
