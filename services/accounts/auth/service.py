"""Registration, login, refresh-token rotation and logout.

Refresh tokens rotate: each refresh spends the presented token and issues a new pair in the
same family. Presenting a spent token again means it was stolen (or replayed), so the whole
family is revoked, and the access tokens of that family stop working at once through a Redis
key the gateway checks on every request.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.audit import record_audit
from services.accounts.auth.revocation_sync import REVOCATION_MARGIN_SECONDS
from services.accounts.auth.schemas import RegisterRequest, TokenPair, password_problem
from services.accounts.deps import AccountsContext
from services.accounts.models import RefreshToken, User
from services.accounts.users import repository as users
from shared.auth.revocation import revoked_family_key
from shared.auth.tokens import InvalidToken, TokenType
from shared.db import after_commit, session_scope, utcnow
from shared.errors import Conflict, FieldError, Forbidden, Unauthorized, UnprocessableEntity
from shared.events import record_event

logger = logging.getLogger("llmnet.accounts.revocation")


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


def _taken(field: str) -> Conflict:
    if field == "username":
        return UsernameTaken("That username is taken; choose another.")
    return EmailTaken("An account with that email already exists; log in instead.")


class AuthService:
    async def register(
        self, session: AsyncSession, ctx: AccountsContext, data: RegisterRequest, ip: str | None
    ) -> User:
        settings = ctx.settings
        problem = password_problem(
            data.password,
            data.username,
            min_length=settings.password_min_length,
            max_length=settings.password_max_length,
        )
        if problem:
            raise WeakPassword(
                f"The password {problem}.",
                fields=[FieldError(field="password", message=problem)],
            )
        if taken := await users.username_or_email_taken(session, data.username, data.email):
            raise _taken(taken)
        user = User(
            username=data.username,
            email=data.email,
            display_name=data.display_name,
            password_hash=await ctx.hasher.hash(data.password),
        )
        session.add(user)
        try:
            await session.flush()
        except IntegrityError as exc:  # a concurrent registration won the race
            field = "email" if "email" in str(exc.orig) else "username"
            raise _taken(field) from exc
        record_audit(
            session,
            "user.registered",
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
            ip=ip,
        )
        record_event(
            session,
            "user.registered",
            {"user_id": str(user.id), "username": user.username},
            source="accounts",
        )
        return user

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
        record_audit(
            session, "auth.login", actor_id=user.id, target_type="user", target_id=user.id, ip=ip
        )
        return await self._issue_pair(session, ctx, user, family_id=uuid.uuid4())

    async def refresh(
        self, session: AsyncSession, ctx: AccountsContext, refresh_token: str, ip: str | None
    ) -> TokenPair:
        claims = ctx.signer.verifier().verify(refresh_token, TokenType.REFRESH)
        family_id = uuid.UUID(str(claims.extra.get("fam")))
        now = utcnow()
        # Spend the token atomically: of two concurrent refreshes with one token, one wins.
        spent = await session.scalar(
            update(RefreshToken)
            .where(
                RefreshToken.id == claims.token_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=now)
            .returning(RefreshToken.user_id)
        )
        if spent is None:
            # Revoked in a transaction of its own: the error below rolls this one back.
            async with session_scope(ctx.sessionmaker) as own:
                await self._revoke_family(own, ctx, family_id)
                record_audit(
                    own,
                    "auth.refresh_reuse",
                    actor_id=uuid.UUID(claims.subject),
                    target_type="token_family",
                    target_id=family_id,
                    ip=ip,
                )
            raise RefreshTokenReused(
                "This refresh token was already used or revoked; log in again."
            )
        user = await users.get_by_id(session, spent)
        if user is None:
            raise InvalidToken("The account no longer exists.")
        if user.is_banned:
            raise AccountBanned("This account is banned.")
        return await self._issue_pair(session, ctx, user, family_id=family_id)

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
        await self._revoke_family(session, ctx, family_id)
        record_audit(
            session,
            "auth.logout",
            actor_id=user_id,
            target_type="token_family",
            target_id=family_id,
            ip=ip,
        )

    async def _revoke_family(
        self, session: AsyncSession, ctx: AccountsContext, family_id: uuid.UUID
    ) -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )

        async def _revoke_access_tokens() -> None:
            # Access tokens of the family live at most this long; the key outlives them all.
            try:
                await ctx.redis.set(
                    revoked_family_key(str(family_id)),
                    "1",
                    ex=ctx.settings.access_token_ttl_seconds + REVOCATION_MARGIN_SECONDS,
                )
            except RedisError as exc:
                # The revocation is committed: the revocation sync publishes it once Redis
                # answers again, which it would otherwise never learn.
                logger.warning(
                    "could not publish the revocation of token family %s to Redis (%s); "
                    "the revocation sync will",
                    family_id,
                    exc,
                    extra={"fields": {"family_id": str(family_id)}},
                )

        after_commit(session, _revoke_access_tokens)

    async def _issue_pair(
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
        session.add(
            RefreshToken(
                id=refresh_claims.token_id,
                user_id=user.id,
                family_id=family_id,
                expires_at=datetime.fromtimestamp(refresh_claims.expires_at, UTC),
            )
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=settings.access_token_ttl_seconds,
        )


auth_service = AuthService()
