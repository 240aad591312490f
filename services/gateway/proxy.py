"""Forwarding a request to its service and the response back, streaming both ways.

The path is put in normal form first (paths.py): routing, access rules and the forwarded
request all use that one path, and only paths under the public prefixes reach a service.
Small bodies are read whole (the common JSON case, cheapest); large or chunked bodies are
streamed and counted against the size limit. Event streams and large responses are relayed
chunk by chunk; when the client goes away Starlette cancels the relay, which closes the
upstream response and so the upstream request. An event stream that breaks off (its upstream
died) ends with an `error` event (OpenAI's error then `[DONE]` on `/v1`).

Inference requests go to one of the inference replicas (replicas.py): their bodies are read
whole (uploads excepted), so the model can be read from them and a request that a replica
could not take (unreachable, or 503 before any body) goes to the next one unchanged. The
answer says which replica gave it in `X-LLMNet-Replica`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp.client import IDEMPOTENT_METHODS
from multidict import CIMultiDictProxy
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from yarl import URL

from services.gateway.auth import Authenticated, Authenticator
from services.gateway.config import GatewaySettings
from services.gateway.paths import NormalTarget, target_of
from services.gateway.ratelimit import admit
from services.gateway.replicas import Replica, ReplicaSet, request_key
from services.gateway.routing import allows_anonymous, is_upload, match, upstream_urls
from services.gateway.upstreams import Upstreams
from shared.auth.identity import IDENTITY_HEADERS, INTERNAL_TOKEN_HEADER, identity_headers
from shared.auth.service_credentials import SERVICE_HEADERS
from shared.errors import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    LLMNetError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    is_openai_path,
    openai_error,
)
from shared.observability import ROUTE_LABEL_KEY, current_request_id
from shared.sse import ServerSentEvent, encode_event

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
# Which inference replica answered (replicas.py's short id).
REPLICA_HEADER = b"x-llmnet-replica"
# A replica that could not be reached got nothing: the request can go to the next one.
_UNREACHED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_EVENT_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")


class Proxy:
    def __init__(
        self,
        settings: GatewaySettings,
        upstreams: Upstreams,
        authenticator: Authenticator,
        redis: Redis,
        replicas: ReplicaSet,
    ) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._replicas = replicas
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
        headers = self._upstream_headers(request, auth, ip)
        replica: Replica | None = None
        upstream: aiohttp.ClientResponse | _Answer
        if service == "inference":
            # Whole, so its model can be read and it can be sent to another replica.
            body = await self._request_body(request, target.path, whole=True)
            upstream, replica = await self._to_replica(request, target, headers, body)
        else:
            body = await self._request_body(request, target.path)
            if isinstance(body, _LimitedBody) and "content-length" in request.headers:
                # Streamed with its declared length, not re-framed as chunks: the service can
                # check the length before reading (an upload part), and nothing is re-framed.
                headers["Content-Length"] = request.headers["content-length"]
            url = self._origins[service] + target.target
            try:
                upstream = await self._send(request, service, url, headers, body)
            except (aiohttp.ClientError, TimeoutError, PayloadTooLarge) as exc:
                raise _send_error(service, request.method, body, exc) from exc
        raw_headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in upstream.headers.items()
            if k.lower() not in _NOT_RETURNED
        ]
        if replica is not None:
            raw_headers.append((REPLICA_HEADER, replica.id.encode("ascii")))
        response: Response
        if isinstance(upstream, _Answer):
            response = Response(upstream.body, status_code=upstream.status)
        elif _should_stream(upstream):
            relay = _relay(upstream, service, is_openai_path(target.path), replica)
            response = StreamingResponse(relay, status_code=upstream.status)
        else:
            try:
                content = await upstream.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise BadGateway(f"The {service} service broke off its answer.") from exc
            finally:
                upstream.release()
                if replica is not None:
                    replica.in_flight -= 1
            response = Response(content, status_code=upstream.status)
        # Raw pairs keep repeated headers (Set-Cookie, Link) and the upstream's exact values.
        response.raw_headers = raw_headers
        return response

    async def _send(
        self,
        request: Request,
        service: str,
        url: str,
        headers: dict[str, str],
        body: bytes | _LimitedBody | None,
    ) -> aiohttp.ClientResponse:
        return await self._upstreams[service].request(
            request.method,
            # Already canonical: encoded=True keeps yarl from quoting or resolving it again.
            URL(url, encoded=True),
            headers=headers,
            data=body,
            allow_redirects=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
        )

    async def _to_replica(
        self,
        request: Request,
        target: NormalTarget,
        headers: dict[str, str],
        body: bytes | _LimitedBody | None,
    ) -> tuple[aiohttp.ClientResponse | _Answer, Replica]:
        """Send to the request's replicas in order (replicas.py) until one answers other than
        503; one that cannot be reached is marked dead. Returns the answer and who gave it,
        the in-flight count of that replica raised until the answer has been relayed."""
        key = request_key(
            request.method, target.path, body if isinstance(body, bytes) else None, self._settings
        )
        candidates = self._replicas.candidates(key)
        if not candidates:
            raise BadGateway("No inference replica is known.", code="upstream_unavailable")
        refused: tuple[_Answer, Replica] | None = None
        failure: BaseException | None = None
        for replica in candidates:
            if isinstance(body, _LimitedBody) and body.started:
                break  # a streamed body (an upload) cannot be sent again
            replica.in_flight += 1
            url = replica.origin + target.target
            try:
                upstream = await self._send(request, "inference", url, headers, body)
            except (aiohttp.ClientError, TimeoutError, PayloadTooLarge) as exc:
                replica.in_flight -= 1
                if not isinstance(exc, _UNREACHED) or _exceeded(body):
                    raise _send_error("inference", request.method, body, exc) from exc
                self._replicas.mark_dead(replica, f"{type(exc).__name__}: {exc}")
                failure = exc
                continue
            if upstream.status != 503 or replica is candidates[-1]:
                return upstream, replica
            # Draining or full before any body: the next replica may take it.
            try:
                refused = (await _Answer.of(upstream), replica)
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = exc
            finally:
                upstream.release()
                replica.in_flight -= 1
            logger.info("inference replica %s answered 503; trying the next", replica.origin)
        if refused is not None:
            return refused
        assert failure is not None
        raise _upstream_error("inference", request.method, failure) from failure

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

    async def _request_body(
        self, request: Request, path: str, *, whole: bool = False
    ) -> bytes | _LimitedBody | None:
        """The body to forward: read whole when small (or when `whole`, uploads excepted),
        else streamed and counted against the limit."""
        upload = is_upload(request.method, path)
        limit = self._settings.max_upload_body_bytes if upload else self._settings.max_body_bytes
        whole = whole and not upload
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
            if length <= _BUFFER_LIMIT or whole:
                return await request.body()
        elif "chunked" not in request.headers.get("transfer-encoding", ""):
            return None
        body = _LimitedBody(request, limit)
        return await body.read() if whole else body


def _exceeded(body: bytes | _LimitedBody | None) -> bool:
    return isinstance(body, _LimitedBody) and body.exceeded


def _send_error(
    service: str, method: str, body: bytes | _LimitedBody | None, exc: BaseException
) -> LLMNetError:
    if isinstance(body, _LimitedBody) and body.exceeded:
        return body.error()  # aiohttp wraps the overflow raised while it sent the body
    return _upstream_error(service, method, exc)


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
        self.started = False

    def error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body exceeds {self.limit} bytes.")

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        size = 0
        async for chunk in self._request.stream():
            size += len(chunk)
            if size > self.limit:
                self.exceeded = True
                raise self.error()
            yield chunk


@dataclass(frozen=True, slots=True)
class _Answer:
    """A whole answer already read (a replica's 503, kept in case no other replica answers)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @classmethod
    async def of(cls, upstream: aiohttp.ClientResponse) -> _Answer:
        return cls(upstream.status, upstream.headers, await upstream.read())


def _event_end(data: bytes) -> int:
    """Where the last complete event in `data` ends (0: none has)."""
    return max(data.rfind(sep) + len(sep) if sep in data else 0 for sep in _EVENT_ENDS)


def _broken_off(service: str, openai: bool) -> bytes:
    detail = f"The {service} service broke off the stream."
    if openai:  # OpenAI's clients read an error this way once a stream has begun
        error = openai_error(502, "upstream_unavailable", detail).model_dump_json()
        return encode_event(ServerSentEvent(raw_data=error)) + encode_event(
            ServerSentEvent(raw_data="[DONE]")
        )
    data = {"code": "upstream_unavailable", "detail": detail + " Reconnect to resume."}
    return encode_event(ServerSentEvent(event="error", data=data))


async def _relay(
    upstream: aiohttp.ClientResponse, service: str, openai: bool, replica: Replica | None
) -> AsyncIterator[bytes]:
    """The upstream's body, chunk by chunk. An event stream goes out an event at a time, so a
    stream that breaks off (its replica died) can end with a whole `error` event instead of
    half an event."""
    events = upstream.headers.get("content-type", "").startswith("text/event-stream")
    completed = False
    pending = b""
    try:
        async for chunk in upstream.content.iter_any():
            if not events:
                yield chunk
                continue
            pending += chunk
            if end := _event_end(pending):
                yield pending[:end]
                pending = pending[end:]
        completed = True
        if pending:
            yield pending
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The status line is gone; all that is left is to end the stream saying so.
        logger.warning("stream from %s broke off: %s", service, exc)
        if events:
            yield _broken_off(service, openai)
    finally:
        # A stream cut short (client gone, cancelled) closes the upstream connection, which is
        # how the upstream learns to stop; a finished one returns it to the pool.
        if completed:
            upstream.release()
        else:
            upstream.close()
        if replica is not None:
            replica.in_flight -= 1
