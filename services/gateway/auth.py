"""Authentication at the edge: access JWTs verified locally, API keys resolved by accounts.

Either way the answer is an Identity or an error raised before any upstream sees the request.
Bans and revoked logins are checked per request through Redis keys accounts maintains; the
check shares one Redis round trip with the rate limiter (see ratelimit.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.gateway.config import GatewaySettings
from shared.auth.api_keys import hash_api_key, looks_like_api_key
from shared.auth.identity import Identity, scopes_for
from shared.auth.revocation import api_key_cache_key, banned_user_key, revoked_family_key
from shared.auth.service_credentials import ServiceName, service_headers
from shared.auth.tokens import InvalidToken, TokenType, TokenVerifier, UnknownSigningKey
from shared.errors import (
    BadGateway,
    ErrorBody,
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
)

logger = logging.getLogger("llmnet.gateway.auth")
_JWKS_REFRESH_INTERVAL = 30.0


class ResolvedKey(BaseModel):
    """What accounts says about an API key (its ResolvedApiKey schema)."""

    key_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    role: str
    scopes: list[str]
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Authenticated:
    identity: Identity
    # Redis keys whose existence means "reject": the user's ban, the login's revocation.
    banned_key: str
    revoked_key: str | None = None


class Authenticator:
    def __init__(
        self, settings: GatewaySettings, accounts: aiohttp.ClientSession, redis: Redis
    ) -> None:
        self._settings = settings
        self._accounts = accounts
        self._redis = redis
        self._verifier: TokenVerifier | None = None
        self._jwks_fetched_at = 0.0
        self._jwks_lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return self._verifier is not None

    async def load_keys(self) -> None:
        """Fetch the JWKS from accounts; at most once per interval, whoever asks."""
        async with self._jwks_lock:
            if time.monotonic() - self._jwks_fetched_at < _JWKS_REFRESH_INTERVAL and self._verifier:
                return
            try:
                async with self._accounts.get("/api/v1/auth/jwks") as response:
                    response.raise_for_status()
                    jwks = await response.json()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ServiceUnavailable(
                    "Authentication is starting up; try again shortly.",
                    retry_after=2,
                    code="auth_unavailable",
                ) from exc
            self._verifier = TokenVerifier(
                jwks,
                issuer=self._settings.jwt_issuer,
                audience=self._settings.jwt_audience,
            )
            self._jwks_fetched_at = time.monotonic()

    async def authenticate(self, authorization: str) -> Authenticated:
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized(
                "Send credentials as 'Authorization: Bearer <access token or API key>'.",
                code="invalid_authorization_header",
            )
        if looks_like_api_key(credential):
            return await self._api_key(credential)
        return await self._jwt(credential)

    async def _jwt(self, token: str) -> Authenticated:
        if self._verifier is None:
            await self.load_keys()
        assert self._verifier is not None
        try:
            claims = self._verifier.verify(token, TokenType.ACCESS)
        except UnknownSigningKey:
            # Accounts may have rotated its key since we fetched the JWKS.
            await self.load_keys()
            claims = self._verifier.verify(token, TokenType.ACCESS)
        try:
            user_id = uuid.UUID(claims.subject)
        except ValueError as exc:
            raise InvalidToken("The token's subject is not a user id.") from exc
        role = str(claims.extra.get("role", "user"))
        identity = Identity(
            user_id=user_id,
            username=str(claims.extra.get("username", "")),
            role=role,
            scopes=scopes_for(role),
            auth_method="jwt",
        )
        family = claims.extra.get("fam")
        return Authenticated(
            identity,
            banned_key=banned_user_key(claims.subject),
            revoked_key=revoked_family_key(str(family)) if family else None,
        )

    async def _api_key(self, key: str) -> Authenticated:
        key_hash = hash_api_key(key)
        cache_key = api_key_cache_key(key_hash)
        try:
            cached = await self._redis.get(cache_key)
        except RedisError as exc:
            raise _redis_unavailable() from exc
        if cached is None:
            cached = await self._resolve(key_hash)
            try:
                await self._redis.set(cache_key, cached, ex=self._settings.api_key_cache_seconds)
            except RedisError as exc:
                raise _redis_unavailable() from exc
        resolved = ResolvedKey.model_validate_json(cached)
        if resolved.expires_at is not None and resolved.expires_at <= datetime.now(UTC):
            raise Unauthorized("This API key has expired.", code="api_key_expired")
        identity = Identity(
            user_id=resolved.user_id,
            username=resolved.username,
            role=resolved.role,
            scopes=frozenset(resolved.scopes),
            auth_method="api_key",
            api_key_id=str(resolved.key_id),
        )
        return Authenticated(identity, banned_key=banned_user_key(str(resolved.user_id)))

    async def _resolve(self, key_hash: str) -> str:
        """The accounts service's answer for a key, as JSON (it is cached as is)."""
        try:
            async with self._accounts.post(
                "/internal/api-keys/resolve",
                json={"key_hash": key_hash},
                headers=service_headers(ServiceName.GATEWAY, self._settings.service_token),
            ) as response:
                status, body = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BadGateway(
                "Could not check the API key with the accounts service.", code="auth_unavailable"
            ) from exc
        if status == 401:
            error = ErrorBody.model_validate_json(body)
            raise Unauthorized(error.detail, code=error.code)
        if status == 403:
            error = ErrorBody.model_validate_json(body)
            raise Forbidden(error.detail, code=error.code)
        if status != 200:
            raise BadGateway(
                "The accounts service failed to check the API key.", code="auth_unavailable"
            )
        return body


def _redis_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Authentication state is unavailable; try again shortly.",
        retry_after=2,
        code="auth_unavailable",
    )
