"""Forwarding a request to its service and the response back, streaming both ways.

The path is put in normal form first (paths.py): routing, access rules and the forwarded
request all use that one path, and only paths under the public prefixes reach a service.
Small bodies are read whole (the common JSON case, cheapest); large or chunked bodies are
streamed and counted against the size limit. Event streams and large responses are relayed
chunk by chunk; when the client goes away Starlette cancels the relay, which closes the
upstream response and so the upstream request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp.client import IDEMPOTENT_METHODS
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from yarl import URL

from services.gateway.auth import Authenticated, Authenticator
from services.gateway.config import GatewaySettings
from services.gateway.paths import NormalTarget, target_of
from services.gateway.ratelimit import admit
from services.gateway.routing import allows_anonymous, is_upload, match, upstream_urls
from services.gateway.upstreams import Upstreams
from shared.auth.identity import IDENTITY_HEADERS, INTERNAL_TOKEN_HEADER, identity_headers
from shared.auth.service_credentials import SERVICE_HEADERS
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
    | SERVICE_HEADERS
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
# aiohttp adds these unless told not to; a proxy sends only what the client sent.
_NO_AUTO_HEADERS = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})
_BUFFER_LIMIT = 1 << 20  # bodies up to this size are read whole rather than streamed


class Proxy:
    def __init__(
        self,
        settings: GatewaySettings,
        upstreams: Upstreams,
        authenticator: Authenticator,
        redis: Redis,
    ) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._authenticator = authenticator
        self._redis = redis
        # Forwarded URLs are absolute: nothing resolves the path against a base URL again.
        self._origins = {
            name: str(URL(url).origin()) for name, url in upstream_urls(settings).items()
        }

    def client_ip(self, request: Request) -> str:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded and self._settings.trust_forwarded_for:
            return forwarded.split(",")[0].strip()
        return request.client.host if request.client else "unknown"

    async def handle(self, request: Request) -> Response:
        target = target_of(request.scope)
        route = match(target.path)
        if route is None:
            raise NotFound(f"No API route at {target.path}; see /docs for the API.")
        request.scope[ROUTE_LABEL_KEY] = route.prefix
        ip = self.client_ip(request)
        auth = await self._authenticate(request, target.path)
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
        return await self._forward(request, route.service, target, auth, ip)

    async def _authenticate(self, request: Request, path: str) -> Authenticated | None:
        authorization = request.headers.get("authorization")
        if authorization:
            return await self._authenticator.authenticate(authorization)
        if allows_anonymous(request.method, path):
            return None
        raise Unauthorized(
            "Authentication required: send 'Authorization: Bearer <access token or API key>'.",
            code="authentication_required",
        )

    async def _forward(
        self,
        request: Request,
        service: str,
        target: NormalTarget,
        auth: Authenticated | None,
        ip: str,
    ) -> Response:
        session = self._upstreams[service]
        body = await self._request_body(request, target.path)
        try:
            upstream = await session.request(
                request.method,
                # Already canonical: encoded=True keeps yarl from quoting or resolving it again.
                URL(self._origins[service] + target.target, encoded=True),
                headers=self._upstream_headers(request, auth, ip),
                data=body,
                allow_redirects=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
            )
        except (aiohttp.ClientError, TimeoutError, PayloadTooLarge) as exc:
            if isinstance(body, _LimitedBody) and body.exceeded:
                raise body.error() from exc
            raise _upstream_error(service, request.method, exc) from exc
        headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in upstream.headers.items()
            if k.lower() not in _NOT_RETURNED
        ]
        if _should_stream(upstream):
            response: Response = StreamingResponse(
                _relay(upstream, service), status_code=upstream.status
            )
        else:
            try:
                body = await upstream.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise BadGateway(f"The {service} service broke off its answer.") from exc
            finally:
                upstream.release()
            response = Response(body, status_code=upstream.status)
        # Raw pairs keep repeated headers (Set-Cookie, Link) and the upstream's exact values.
        response.raw_headers = headers
        return response

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

    async def _request_body(self, request: Request, path: str) -> bytes | _LimitedBody | None:
        limit = (
            self._settings.max_upload_body_bytes
            if is_upload(request.method, path)
            else self._settings.max_body_bytes
        )
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
        return _LimitedBody(request, limit)


def _upstream_error(service: str, method: str, exc: BaseException) -> BadGateway | GatewayTimeout:
    if isinstance(exc, TimeoutError):
        return GatewayTimeout(f"The {service} service did not answer in time.")
    if isinstance(exc, aiohttp.ServerDisconnectedError) and method not in IDEMPOTENT_METHODS:
        # Idempotent requests were already replayed once by aiohttp (see upstreams.py).
        return BadGateway(
            f"The {service} service closed the connection before answering. A {method} is "
            "not replayed automatically: check whether it took effect before sending it again.",
            code="upstream_unavailable",
        )
    return BadGateway(f"The {service} service is unreachable.", code="upstream_unavailable")


def _should_stream(upstream: aiohttp.ClientResponse) -> bool:
    if upstream.headers.get("content-type", "").startswith("text/event-stream"):
        return True
    length = upstream.content_length
    return length is None or length > _BUFFER_LIMIT


class _LimitedBody:
    """The request body streamed upstream, cut off past the limit.

    aiohttp wraps errors raised while it sends a body, so the overflow is also remembered here.
    """

    def __init__(self, request: Request, limit: int) -> None:
        self._request = request
        self.limit = limit
        self.exceeded = False

    def error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body exceeds {self.limit} bytes.")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._request.stream():
            size += len(chunk)
            if size > self.limit:
                self.exceeded = True
                raise self.error()
            yield chunk


async def _relay(upstream: aiohttp.ClientResponse, service: str) -> AsyncIterator[bytes]:
    completed = False
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
        completed = True
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The status line is gone; all we can do is end the stream and say why in the log.
        logger.warning("stream from %s broke off: %s", service, exc)
    finally:
        # A stream cut short (client gone, cancelled) closes the upstream connection, which is
        # how the upstream learns to stop; a finished one returns it to the pool.
        if completed:
            upstream.release()
        else:
            upstream.close()
