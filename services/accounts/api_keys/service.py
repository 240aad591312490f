"""Creating, listing, revoking and resolving API keys."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.api_keys import repository
from services.accounts.api_keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ResolvedApiKey,
)
from services.accounts.audit import record_audit
from services.accounts.deps import AccountsContext
from services.accounts.models import ApiKey, AuditAction
from shared.auth.api_keys import generate_api_key, hash_api_key
from shared.auth.identity import Identity, scopes_for
from shared.auth.revocation import api_key_cache_key
from shared.db import after_commit, utcnow
from shared.errors import Forbidden, NotFound, TooManyRequests, Unauthorized


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
        requested = frozenset(data.scopes)
        # A key never grants more than its creator holds, so a read-only key cannot mint an
        # admin one.
        beyond = requested - (owner.scopes & scopes_for(owner.role))
        if beyond:
            raise Forbidden(
                f"You cannot grant scopes you do not hold: {', '.join(sorted(beyond))}.",
                code="scope_not_allowed",
            )
        count = await repository.count_active(session, owner.user_id)
        if count >= ctx.settings.max_api_keys_per_user:
            raise TooManyRequests(
                f"You have {count} active API keys, the most allowed; revoke one first.",
                retry_after=60,
                code="api_key_limit",
            )
        secret = generate_api_key()
        key = await repository.add(
            session,
            ApiKey(
                user_id=owner.user_id,
                name=data.name,
                key_prefix=secret[:12],
                key_hash=hash_api_key(secret),
                scopes=[scope.value for scope in sorted(requested)],
                expires_at=data.expires_at,
            ),
        )
        record_audit(
            session,
            AuditAction.API_KEY_CREATED,
            key.id,
            actor_id=owner.user_id,
            ip=ip,
            details={"scopes": key.scopes},
        )
        return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=secret)

    async def list_keys(self, session: AsyncSession, owner_id: uuid.UUID) -> list[ApiKeyRead]:
        keys = await repository.list_of_user(session, owner_id)
        return [ApiKeyRead.model_validate(k) for k in keys]

    async def revoke(
        self,
        session: AsyncSession,
        ctx: AccountsContext,
        owner: Identity,
        key_id: uuid.UUID,
        ip: str | None,
    ) -> None:
        key = await repository.get(session, key_id)
        if key is None or key.user_id != owner.user_id:
            raise ApiKeyNotFound("No such API key among yours.")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            record_audit(
                session, AuditAction.API_KEY_REVOKED, key.id, actor_id=owner.user_id, ip=ip
            )
            cache_key = api_key_cache_key(key.key_hash)

            async def drop_cached_resolution() -> None:
                # The gateway caches what a key resolved to; it must ask again, and be refused.
                await ctx.redis.delete(cache_key)

            after_commit(session, drop_cached_resolution)

    async def resolve(
        self, session: AsyncSession, ctx: AccountsContext, key_hash: str
    ) -> ResolvedApiKey:
        """The identity behind a key, for the gateway; also records when it was last used."""
        found = await repository.get_with_owner(session, key_hash)
        if found is None:
            raise InvalidApiKey("Unknown API key.")
        key, user = found
        now = utcnow()
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
