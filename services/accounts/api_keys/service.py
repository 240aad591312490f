"""Creating, listing, revoking and resolving API keys."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.api_keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ResolvedApiKey,
)
from services.accounts.audit import record_audit
from services.accounts.deps import AccountsContext
from services.accounts.models import ApiKey, User
from shared.auth.api_keys import generate_api_key, hash_api_key
from shared.auth.identity import Identity, scopes_for
from shared.auth.revocation import api_key_cache_key
from shared.db import after_commit, utcnow
from shared.errors import Forbidden, NotFound, TooManyRequests, Unauthorized, UnprocessableEntity


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class InvalidApiKey(Unauthorized):
    code = "invalid_api_key"


class ApiKeyService:
    async def create(
        self,
        session: AsyncSession,
        ctx: AccountsContext,
        owner: Identity,
        data: ApiKeyCreate,
        ip: str | None,
    ) -> ApiKeyCreated:
        requested = frozenset(s.value for s in data.scopes)
        # A key never grants more than its creator holds, so a read-only key cannot mint an
        # admin one.
        beyond = requested - (owner.scopes & scopes_for(owner.role))
        if beyond:
            raise Forbidden(
                f"You cannot grant scopes you do not hold: {', '.join(sorted(beyond))}.",
                code="scope_not_allowed",
            )
        if data.expires_at is not None and data.expires_at <= utcnow():
            raise UnprocessableEntity("expires_at must be in the future.")
        count = await session.scalar(
            select(func.count()).where(ApiKey.user_id == owner.user_id, ApiKey.revoked_at.is_(None))
        )
        if (count or 0) >= ctx.settings.max_api_keys_per_user:
            raise TooManyRequests(
                f"You have {count} active API keys, the most allowed; revoke one first.",
                retry_after=60,
                code="api_key_limit",
            )
        secret = generate_api_key()
        key = ApiKey(
            user_id=owner.user_id,
            name=data.name,
            key_prefix=secret[:12],
            key_hash=hash_api_key(secret),
            scopes=sorted(requested),
            expires_at=data.expires_at,
        )
        session.add(key)
        await session.flush()
        record_audit(
            session,
            "api_key.created",
            actor_id=owner.user_id,
            target_type="api_key",
            target_id=key.id,
            ip=ip,
            details={"scopes": key.scopes},
        )
        return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=secret)

    async def list(self, session: AsyncSession, owner_id: uuid.UUID) -> list[ApiKeyRead]:
        keys = await session.scalars(
            select(ApiKey).where(ApiKey.user_id == owner_id).order_by(ApiKey.created_at.desc())
        )
        return [ApiKeyRead.model_validate(k) for k in keys]

    async def revoke(
        self,
        session: AsyncSession,
        ctx: AccountsContext,
        owner: Identity,
        key_id: uuid.UUID,
        ip: str | None,
    ) -> None:
        key = await session.get(ApiKey, key_id)
        if key is None or key.user_id != owner.user_id:
            raise ApiKeyNotFound("No such API key among yours.")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            record_audit(
                session,
                "api_key.revoked",
                actor_id=owner.user_id,
                target_type="api_key",
                target_id=key.id,
                ip=ip,
            )
            cache_key = api_key_cache_key(key.key_hash)

            async def _forget() -> None:
                await ctx.redis.delete(cache_key)

            after_commit(session, _forget)

    async def resolve(
        self, session: AsyncSession, ctx: AccountsContext, key_hash: str
    ) -> ResolvedApiKey:
        """The identity behind a key, for the gateway; also records when it was last used."""
        row = (
            await session.execute(
                select(ApiKey, User)
                .join(User, User.id == ApiKey.user_id)
                .where(ApiKey.key_hash == key_hash)
            )
        ).one_or_none()
        now = utcnow()
        if row is None:
            raise InvalidApiKey("Unknown API key.")
        key, user = row
        if key.revoked_at is not None:
            raise InvalidApiKey("This API key was revoked.", code="api_key_revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise InvalidApiKey("This API key has expired.", code="api_key_expired")
        if user.is_banned:
            raise Forbidden("This account is banned.", code="account_banned")
        resolution = timedelta(seconds=ctx.settings.api_key_last_used_resolution_seconds)
        if key.last_used_at is None or now - key.last_used_at >= resolution:
            key.last_used_at = now
        return ResolvedApiKey(
            key_id=key.id,
            user_id=user.id,
            username=user.username,
            role=user.role,
            scopes=sorted(scopes_for(user.role, frozenset(key.scopes))),
            expires_at=key.expires_at,
        )


api_key_service = ApiKeyService()
