"""Forwarding a request to its service and the response back, streaming both ways.

Small bodies are read whole (the common JSON case, cheapest); large or chunked bodies are
streamed and counted against the size limit. Event streams and large responses are relayed
chunk by chunk; when the client goes away Starlette cancels the relay, which closes the
upstream response and so the upstream request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from services.gateway.auth import Authenticated, Authenticator
from services.gateway.config import GatewaySettings
from services.gateway.ratelimit import admit
from services.gateway.routing import allows_anonymous, match
from shared.auth.identity import IDENTITY_HEADERS, INTERNAL_TOKEN_HEADER, identity_headers
from shared.errors import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from shared.observability import ROUTE_LABEL_KEY, current_request_id

logger = logging.getLogger("llmnet.gateway.proxy")

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Credentials stay at the edge: services get the verified identity instead.
_NOT_FORWARDED = (
    _HOP_BY_HOP
    | IDENTITY_HEADERS
    | {
        "host",
        "content-length",
        "authorization",
        INTERNAL_TOKEN_HEADER,
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    }
)
_NOT_RETURNED = _HOP_BY_HOP | {"x-request-id"}
_BUFFER_LIMIT = 1 << 20  # bodies up to this size are read whole rather than streamed


class Proxy:
    def __init__(
        self,
        settings: GatewaySettings,
        upstreams: dict[str, httpx.AsyncClient],
        authenticator: Authenticator,
        redis: Redis,
    ) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._authenticator = authenticator
        self._redis = redis

    def client_ip(self, request: Request) -> str:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded and self._settings.trust_forwarded_for:
            return forwarded.split(",")[0].strip()
        return request.client.host if request.client else "unknown"

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        route = match(path)
        if route is None:
            raise NotFound(f"No API route at {path}; see /docs for the API.")
        request.scope[ROUTE_LABEL_KEY] = route.prefix
        ip = self.client_ip(request)
        auth = await self._authenticate(request)
        if auth is None:
            await admit(
                self._redis, subject=f"ip:{ip}", limit=self._settings.anon_rate_limit_per_minute
            )
        else:
            await admit(
                self._redis,
                subject=f"user:{auth.identity.user_id}",
                limit=self._settings.rate_limit_per_minute,
                auth=auth,
            )
        return await self._forward(request, route.service, auth, ip)

    async def _authenticate(self, request: Request) -> Authenticated | None:
        authorization = request.headers.get("authorization")
        if authorization:
            return await self._authenticator.authenticate(authorization)
        if allows_anonymous(request.method, request.url.path):
            return None
        raise Unauthorized(
            "Authentication required: send 'Authorization: Bearer <access token or API key>'.",
            code="authentication_required",
        )

    async def _forward(
        self, request: Request, service: str, auth: Authenticated | None, ip: str
    ) -> Response:
        client = self._upstreams[service]
        headers = self._upstream_headers(request, auth, ip)
        content = await self._request_body(request)
        target = request.scope["raw_path"].decode("latin-1")
        if query := request.scope.get("query_string"):
            target += "?" + query.decode("latin-1")
        upstream_request = client.build_request(
            request.method, target, headers=headers, content=content
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.TimeoutException as exc:
            raise GatewayTimeout(f"The {service} service did not answer in time.") from exc
        except httpx.TransportError as exc:
            raise BadGateway(
                f"The {service} service is unreachable.", code="upstream_unavailable"
            ) from exc
        response_headers = {
            k: v for k, v in upstream.headers.multi_items() if k.lower() not in _NOT_RETURNED
        }
        if _should_stream(upstream):
            return StreamingResponse(
                _relay(upstream, service),
                status_code=upstream.status_code,
                headers=response_headers,
            )
        try:
            body = b"".join([chunk async for chunk in upstream.aiter_raw()])
        except httpx.HTTPError as exc:
            raise BadGateway(f"The {service} service broke off its answer.") from exc
        finally:
            await upstream.aclose()
        return Response(body, status_code=upstream.status_code, headers=response_headers)

    def _upstream_headers(
        self, request: Request, auth: Authenticated | None, ip: str
    ) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k not in _NOT_FORWARDED}
        headers["x-request-id"] = current_request_id() or ""
        headers["x-forwarded-for"] = ip
        headers["x-forwarded-proto"] = request.url.scheme
        if host := request.headers.get("host"):
            headers["x-forwarded-host"] = host
        if auth is not None:
            headers.update(identity_headers(auth.identity, self._settings.internal_token))
        else:
            # Lets services trust X-Forwarded-For from the gateway for anonymous calls too.
            headers[INTERNAL_TOKEN_HEADER] = self._settings.internal_token
        return headers

    async def _request_body(self, request: Request) -> bytes | AsyncIterator[bytes] | None:
        limit = self._settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError as exc:
                raise BadRequest("The Content-Length header is not a number.") from exc
            if length > limit:
                raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
            if length == 0:
                return None
            if length <= _BUFFER_LIMIT:
                return await request.body()
        elif "chunked" not in request.headers.get("transfer-encoding", ""):
            return None
        return _limited(request, limit)


def _should_stream(upstream: httpx.Response) -> bool:
    if upstream.headers.get("content-type", "").startswith("text/event-stream"):
        return True
    length = upstream.headers.get("content-length")
    return length is None or int(length) > _BUFFER_LIMIT


async def _limited(request: Request, limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
        yield chunk


async def _relay(upstream: httpx.Response, service: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        # The status line is gone; all we can do is end the stream and say why in the log.
        logger.warning("stream from %s broke off: %s", service, exc)
    finally:
        await upstream.aclose()
