"""Registration, login, refresh-token rotation and logout.

Refresh tokens rotate: each refresh spends the presented token and issues a new pair in the
same family (one login). Presenting a spent token again means it was stolen (or replayed), so
the whole family is revoked, and the access tokens of that family stop working at once
(auth/revocation.py).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.audit import record_audit
from services.accounts.auth import repository
from services.accounts.auth.revocation import revocation_service
from services.accounts.auth.schemas import (
    RegisteredUser,
    RegisterRequest,
    TokenPair,
    password_problem,
)
from services.accounts.config import AccountsSettings
from services.accounts.deps import AccountsContext
from services.accounts.models import AuditAction, RefreshToken, User
from services.accounts.users import repository as users
from shared.auth.tokens import InvalidToken, TokenType
from shared.db import session_scope, utcnow
from shared.errors import Conflict, FieldError, Forbidden, Unauthorized, UnprocessableEntity
from shared.events import record_event


class UsernameTaken(Conflict):
    code = "username_taken"


class EmailTaken(Conflict):
    code = "email_taken"


class WeakPassword(UnprocessableEntity):
    code = "weak_password"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class AccountBanned(Forbidden):
    code = "account_banned"


class RefreshTokenReused(Unauthorized):
    code = "refresh_token_reused"


def _already_taken(field: str) -> Conflict:
    if field == "username":
        return UsernameTaken("That username is taken; choose another.")
    return EmailTaken("An account with that email already exists; log in instead.")


class AuthService:
    def check_password(self, settings: AccountsSettings, password: str, username: str) -> None:
        """Raise WeakPassword (naming the field) unless the password meets the rules."""
        problem = password_problem(
            password,
            username,
            min_length=settings.password_min_length,
            max_length=settings.password_max_length,
        )
        if problem:
            raise WeakPassword(
                f"The password {problem}.",
                fields=[FieldError(field="password", message=problem)],
            )

    async def register(
        self, session: AsyncSession, ctx: AccountsContext, data: RegisterRequest, ip: str | None
    ) -> RegisteredUser:
        self.check_password(ctx.settings, data.password, data.username)
        if taken := await users.username_or_email_taken(session, data.username, data.email):
            raise _already_taken(taken)
        user = User(
            username=data.username,
            email=data.email,
            display_name=data.display_name,
            password_hash=await ctx.hasher.hash(data.password),
        )
        try:
            await users.add_user(session, user)
        except IntegrityError as exc:  # a concurrent registration won the race
            field = "email" if "email" in str(exc.orig) else "username"
            raise _already_taken(field) from exc
        record_audit(session, AuditAction.USER_REGISTERED, user.id, actor_id=user.id, ip=ip)
        record_event(
            session,
            "user.registered",
            {"user_id": str(user.id), "username": user.username},
            source="accounts",
        )
        return RegisteredUser.model_validate(user, from_attributes=True)

    async def login(
        self,
        session: AsyncSession,
        ctx: AccountsContext,
        login: str,
        password: str,
        ip: str | None,
    ) -> TokenPair:
        user = await users.get_by_login(session, login)
        valid = await ctx.hasher.verify(password, user.password_hash if user else None)
        if user is None or not valid:
            raise InvalidCredentials("Wrong username or password.")
        if user.is_banned:
            raise AccountBanned("This account is banned.")
        record_audit(session, AuditAction.LOGIN, user.id, actor_id=user.id, ip=ip)
        return self._issue_token_pair(session, ctx, user, family_id=uuid.uuid4())

    async def refresh(
        self, session: AsyncSession, ctx: AccountsContext, refresh_token: str, ip: str | None
    ) -> TokenPair:
        claims = ctx.signer.verifier().verify(refresh_token, TokenType.REFRESH)
        family_id = uuid.UUID(str(claims.extra.get("fam")))
        user_id = await repository.spend_refresh_token(session, claims.token_id, utcnow())
        if user_id is None:
            # Revoked in a transaction of its own: the error below rolls this one back.
            async with session_scope(ctx.sessionmaker) as own:
                await revocation_service.revoke_login(own, ctx, family_id)
                record_audit(
                    own,
                    AuditAction.REFRESH_TOKEN_REUSED,
                    family_id,
                    actor_id=uuid.UUID(claims.subject),
                    ip=ip,
                )
            raise RefreshTokenReused(
                "This refresh token was already used or revoked; log in again."
            )
        user = await users.get_by_id(session, user_id)
        if user is None:
            raise InvalidToken("The account no longer exists.")
        if user.is_banned:
            raise AccountBanned("This account is banned.")
        return self._issue_token_pair(session, ctx, user, family_id=family_id)

    async def logout(
        self,
        session: AsyncSession,
        ctx: AccountsContext,
        user_id: uuid.UUID,
        refresh_token: str,
        ip: str | None,
    ) -> None:
        claims = ctx.signer.verifier().verify(refresh_token, TokenType.REFRESH)
        if claims.subject != str(user_id):
            raise Forbidden("That refresh token belongs to another account.", code="not_your_token")
        family_id = uuid.UUID(str(claims.extra.get("fam")))
        await revocation_service.revoke_login(session, ctx, family_id)
        record_audit(session, AuditAction.LOGOUT, family_id, actor_id=user_id, ip=ip)

    def _issue_token_pair(
        self, session: AsyncSession, ctx: AccountsContext, user: User, *, family_id: uuid.UUID
    ) -> TokenPair:
        settings = ctx.settings
        access, _ = ctx.signer.issue(
            str(user.id),
            TokenType.ACCESS,
            settings.access_token_ttl_seconds,
            extra={"username": user.username, "role": user.role, "fam": str(family_id)},
        )
        refresh, refresh_claims = ctx.signer.issue(
            str(user.id),
            TokenType.REFRESH,
            settings.refresh_token_ttl_seconds,
            extra={"fam": str(family_id)},
        )
        repository.add_refresh_token(
            session,
            RefreshToken(
                id=refresh_claims.token_id,
                user_id=user.id,
                family_id=family_id,
                expires_at=datetime.fromtimestamp(refresh_claims.expires_at, UTC),
            ),
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=settings.access_token_ttl_seconds,
        )


auth_service = AuthService()
