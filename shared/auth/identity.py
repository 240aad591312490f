"""The caller's identity as the gateway forwards it, and the dependencies services authorize with.

The gateway authenticates (JWT or API key), strips any identity headers the client sent, and
forwards the identity below together with the internal token. Services trust identity headers
only next to that token (or from another service that signed the request with its own
credential, see service_credentials.py), and still decide what the caller may do: scopes
here, ownership and visibility in their own service modules.

Exports: Identity, Role, Scope, identity_headers, forwarded_identity_headers, required_scope,
get_identity, CurrentUser, OptionalUser, AdminUser, INTERNAL_TOKEN_HEADER, IDENTITY_HEADERS.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request

from shared.auth.service_credentials import verified_caller
from shared.errors import Forbidden, Unauthorized

INTERNAL_TOKEN_HEADER = "x-llmnet-internal-token"
_USER_ID = "x-llmnet-user-id"
_USERNAME = "x-llmnet-username"
_ROLE = "x-llmnet-role"
_SCOPES = "x-llmnet-scopes"
_AUTH = "x-llmnet-auth"
_API_KEY_ID = "x-llmnet-api-key-id"
IDENTITY_HEADERS = frozenset({_USER_ID, _USERNAME, _ROLE, _SCOPES, _AUTH, _API_KEY_ID})


class Role(StrEnum):
    """A user's role; accounts stores it, tokens and identity headers carry it."""

    USER = "user"
    ADMIN = "admin"


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    INFERENCE = "inference"
    ADMIN = "admin"


USER_SCOPES = frozenset({Scope.READ, Scope.WRITE, Scope.INFERENCE})


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: uuid.UUID
    username: str
    role: str
    scopes: frozenset[str]
    auth_method: str  # "jwt" or "api_key"
    api_key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN and Scope.ADMIN in self.scopes


def scopes_for(role: str, granted: frozenset[str] | None = None) -> frozenset[str]:
    """A session (JWT) gets every scope its role allows; an API key at most what it was given."""
    allowed = USER_SCOPES | ({Scope.ADMIN} if role == Role.ADMIN else set())
    return frozenset(allowed if granted is None else granted & allowed)


def identity_headers(identity: Identity, internal_token: str) -> dict[str, str]:
    """What the gateway attaches to a forwarded request: the identity and its edge token."""
    return {INTERNAL_TOKEN_HEADER: internal_token, **forwarded_identity_headers(identity)}


def forwarded_identity_headers(identity: Identity) -> dict[str, str]:
    """The identity alone, for a service that signs its request with its own credential."""
    headers = {
        _USER_ID: str(identity.user_id),
        _USERNAME: identity.username,
        _ROLE: identity.role,
        _SCOPES: " ".join(sorted(identity.scopes)),
        _AUTH: identity.auth_method,
    }
    if identity.api_key_id:
        headers[_API_KEY_ID] = identity.api_key_id
    return headers


def required_scope(method: str, path: str) -> Scope:
    if path.startswith("/v1/"):
        return Scope.INFERENCE
    if path.startswith("/api/v1/admin"):
        return Scope.ADMIN
    if method in {"GET", "HEAD", "OPTIONS"}:
        return Scope.READ
    return Scope.WRITE


def _trusted(request: Request) -> bool:
    token = request.headers.get(INTERNAL_TOKEN_HEADER)
    expected: str = request.app.state.settings.internal_token
    return token is not None and hmac.compare_digest(token.encode(), expected.encode())


async def get_identity(request: Request) -> Identity | None:
    user_id = request.headers.get(_USER_ID)
    if user_id is None:
        return None
    if not _trusted(request) and verified_caller(request) is None:
        raise Unauthorized("Identity headers are only accepted from the gateway.")
    return Identity(
        user_id=uuid.UUID(user_id),
        username=request.headers.get(_USERNAME, ""),
        role=request.headers.get(_ROLE, Role.USER),
        scopes=frozenset(request.headers.get(_SCOPES, "").split()),
        auth_method=request.headers.get(_AUTH, "jwt"),
        api_key_id=request.headers.get(_API_KEY_ID),
    )


async def require_identity(
    request: Request, identity: Annotated[Identity | None, Depends(get_identity)]
) -> Identity:
    if identity is None:
        raise Unauthorized("Authentication required: send 'Authorization: Bearer <token or key>'.")
    scope = required_scope(request.method, request.url.path)
    if scope not in identity.scopes:
        raise Forbidden(
            f"This credential lacks the '{scope}' scope needed here.", code="insufficient_scope"
        )
    return identity


async def require_admin(identity: Annotated[Identity, Depends(require_identity)]) -> Identity:
    if not identity.is_admin:
        raise Forbidden("Administrators only.", code="admin_required")
    return identity


CurrentUser = Annotated[Identity, Depends(require_identity)]
OptionalUser = Annotated[Identity | None, Depends(get_identity)]
AdminUser = Annotated[Identity, Depends(require_admin)]


def client_ip(request: Request) -> str | None:
    """The caller's address: the gateway's X-Forwarded-For when it came through the gateway."""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and _trusted(request):
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else None
