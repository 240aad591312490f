"""The error hierarchy and the one JSON error shape every service answers with.

    LLMNetError (500 internal_error)
    ├── BadRequest (400)          ├── Conflict (409)
    ├── Unauthorized (401)        ├── PayloadTooLarge (413)
    ├── Forbidden (403)           ├── UnprocessableEntity (422, with fields)
    ├── NotFound (404)            ├── TooManyRequests (429, Retry-After)
    ├── BadGateway (502)          ├── ServiceUnavailable (503, Retry-After)
    └── GatewayTimeout (504)

Domain errors subclass one of these with their own stable `code`. Services raise them and
never HTTPException; `install_error_handlers` renders them, FastAPI's validation errors,
Starlette's HTTPExceptions and anything unexpected as
`{"code", "detail", "request_id", "fields"?}` — except on the OpenAI-compatible API (`/v1/...`),
where they take OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, and a
validation error is a 400 as OpenAI answers it, so OpenAI's client libraries show the message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.fields import NUL_FREE_PATTERN, NUL_MESSAGE
from shared.observability import current_request_id

logger = logging.getLogger("llmnet.errors")


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str
    detail: str
    request_id: str | None = None
    fields: list[FieldError] | None = None


class LLMNetError(Exception):
    status_code: ClassVar[int] = 500
    code: str = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        fields: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.fields = list(fields) if fields else None
        self.headers = dict(headers or {})


class BadRequest(LLMNetError):
    status_code = 400
    code = "bad_request"


class Unauthorized(LLMNetError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(LLMNetError):
    status_code = 403
    code = "forbidden"


class NotFound(LLMNetError):
    status_code = 404
    code = "not_found"


class Conflict(LLMNetError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(LLMNetError):
    status_code = 413
    code = "payload_too_large"


class UnprocessableEntity(LLMNetError):
    status_code = 422
    code = "validation_error"


class _RetryLater(LLMNetError):
    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class TooManyRequests(_RetryLater):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(_RetryLater):
    status_code = 503
    code = "unavailable"


class BadGateway(LLMNetError):
    status_code = 502
    code = "bad_gateway"


class GatewayTimeout(LLMNetError):
    status_code = 504
    code = "gateway_timeout"


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """The body of an error on the OpenAI-compatible API (and of its mid-stream error event)."""

    error: OpenAIErrorDetail


# OpenAI's error types by status (what its client libraries map to exception classes).
_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(
    status_code: int, code: str, detail: str, fields: Sequence[FieldError] | None = None
) -> OpenAIErrorBody:
    kind = _OPENAI_TYPES.get(status_code)
    if kind is None:
        kind = "server_error" if status_code >= 500 else "invalid_request_error"
    param = fields[0].field if fields else None
    return OpenAIErrorBody(
        error=OpenAIErrorDetail(message=detail, type=kind, param=param, code=code)
    )


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def error_response(
    status_code: int,
    code: str,
    detail: str,
    *,
    fields: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    openai: bool = False,
) -> JSONResponse:
    """The error as llmnet's body, or as OpenAI's (`openai`: a `/v1` request)."""
    if openai:
        # OpenAI answers a malformed request 400, whatever is wrong with it.
        status_code = 400 if status_code == 422 else status_code
        shaped: dict[str, Any] = openai_error(status_code, code, detail, fields).model_dump()
    else:
        body = ErrorBody(
            code=code, detail=detail, request_id=current_request_id(), fields=fields or None
        )
        shaped = body.model_dump(exclude_none=True)
    return JSONResponse(shaped, status_code=status_code, headers=dict(headers or {}))


# The labels pydantic puts in a location for each member of a union (`str | list[str]`):
# `constrained-str`, `list[str]`, `function-after[...]`. No field name looks like one.
_UNION_MEMBER = re.compile(r"[\[\]()\-]|^(str|int|float|bool|list|dict|none|nullable)$")


def _field_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    # A parameter's name may have a dash (Last-Event-ID): only what follows it can be a label.
    keep = 1 if parts and parts[0] in {"query", "path", "header", "cookie"} else 0
    if parts and parts[0] in {"body", "query", "path", "header", "cookie", "form"}:
        parts = parts[1:]
    parts = parts[:keep] + [p for p in parts[keep:] if not _UNION_MEMBER.search(p)]
    return ".".join(parts) or "body"


def _message(error: Mapping[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    if error.get("type") == "string_pattern_mismatch" and ctx.get("pattern") == NUL_FREE_PATTERN:
        return NUL_MESSAGE
    return str(error["msg"])


def validation_fields(errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    found = [(FieldError(field=_field_name(e["loc"]), message=_message(e)), e) for e in errors]
    # A union (`str | list[str]`) reports every member; for a value of one member's type, the
    # others' "should be a valid list" is noise beside what is actually wrong with it.
    wrong = {f.field for f, e in found if not str(e.get("type", "")).endswith("_type")}
    return [
        f for f, e in found if not (str(e.get("type", "")).endswith("_type") and f.field in wrong)
    ]


def _openai(request: Request) -> bool:
    return is_openai_path(request.url.path)


async def _llmnet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LLMNetError)
    return error_response(
        exc.status_code,
        exc.code,
        exc.detail,
        fields=exc.fields,
        headers=exc.headers,
        openai=_openai(request),
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = validation_fields(exc.errors())
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields)
    return error_response(
        422,
        "validation_error",
        f"Invalid request. {summary}",
        fields=fields,
        openai=_openai(request),
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method the request's path answers. Starlette's own 405 names only the methods of
    the first route whose path matched, while FastAPI makes one route per method; so each
    method is asked of the router (through its public `matches`, included routers too)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "error"
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; this path answers {headers['Allow']}."
    return error_response(exc.status_code, code, detail, headers=headers, openai=_openai(request))


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Redis is used from many routes (limits, revocations, slots): its outage is translated
    # here, once, rather than at every call site. (The database's is, in shared.db's engine.)
    logger.warning("Redis unavailable: %s", exc)
    error = ServiceUnavailable(
        "Redis is unavailable; try again shortly.",
        retry_after=2,
        code="redis_unavailable",
    )
    error.__cause__ = exc
    return await _llmnet_error(request, error)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(
        500,
        "internal_error",
        "Internal server error; the request id helps us find it.",
        openai=_openai(request),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LLMNetError, _llmnet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RedisConnectionError, _redis_unavailable)
    app.add_exception_handler(RedisTimeoutError, _redis_unavailable)
    app.add_exception_handler(Exception, _unexpected)


# Documented on every route so clients and Swagger see the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Client error; `detail` says what to fix."},
}
