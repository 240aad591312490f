"""Service-to-service credentials for `/internal/...` endpoints.

Each service process holds one secret of its own (`SERVICE_TOKEN`) and presents it with its
name when it calls another service's internal endpoints. The receiving service knows only the
SHA-256 of each caller's secret (`SERVICE_CALLERS`), so it cannot impersonate its callers, and
each internal endpoint names the callers it answers. This credential is distinct from the
internal token the gateway attaches to forwarded user requests: a user request smuggled onto
an internal path never carries a service credential.

Exports: SERVICE_NAME_HEADER, SERVICE_TOKEN_HEADER, SERVICE_HEADERS, service_token_hash,
service_headers, parse_service_callers, verified_caller, require_service, ServiceName.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum

from fastapi import Request

from shared.errors import NotFound

SERVICE_NAME_HEADER = "x-llmnet-service"
SERVICE_TOKEN_HEADER = "x-llmnet-service-token"
SERVICE_HEADERS = frozenset({SERVICE_NAME_HEADER, SERVICE_TOKEN_HEADER})


class ServiceName(StrEnum):
    GATEWAY = "gateway"
    ACCOUNTS = "accounts"
    MODELS_HUB = "models_hub"
    INFERENCE = "inference"
    FEED = "feed"


def service_token_hash(token: str) -> str:
    """What a receiving service stores for a caller: tokens are random, so SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def service_headers(name: ServiceName, token: str) -> dict[str, str]:
    return {SERVICE_NAME_HEADER: str(name), SERVICE_TOKEN_HEADER: token}


def parse_service_callers(value: str) -> dict[ServiceName, str]:
    """`name:sha256hex,name:sha256hex` (the SERVICE_CALLERS format) as a mapping."""
    callers: dict[ServiceName, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, digest = item.partition(":")
        digest = digest.strip().lower()
        try:
            service = ServiceName(name.strip())
        except ValueError:
            known = ", ".join(s.value for s in ServiceName)
            raise ValueError(f"unknown service {name.strip()!r} (known: {known})") from None
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{name.strip()}: expected '<name>:<sha256 hex of its token>'")
        callers[service] = digest
    return callers


def verified_caller(request: Request) -> ServiceName | None:
    """The service that signed this request with its own credential, or None."""
    name = request.headers.get(SERVICE_NAME_HEADER)
    token = request.headers.get(SERVICE_TOKEN_HEADER)
    if name is None or token is None:
        return None
    callers: Mapping[ServiceName, str] = request.app.state.settings.service_callers
    try:
        service = ServiceName(name)
    except ValueError:
        return None
    expected = callers.get(service)
    if expected is None:
        return None
    if not hmac.compare_digest(service_token_hash(token), expected):
        return None
    return service


def require_service(*allowed: ServiceName) -> Callable[[Request], Awaitable[ServiceName]]:
    """A dependency: the endpoint answers only these callers; everyone else gets 404.

    404 rather than 401/403: to anyone but its callers an internal endpoint does not exist.
    """
    allowed_set = frozenset(allowed)

    async def dependency(request: Request) -> ServiceName:
        caller = verified_caller(request)
        if caller is None or caller not in allowed_set:
            raise NotFound(f"No route at {request.url.path}.", code="not_found")
        return caller

    return dependency
