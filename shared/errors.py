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
`{"code", "detail", "request_id", "fields"?}`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def error_response(
    status_code: int,
    code: str,
    detail: str,
    *,
    fields: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(
        code=code, detail=detail, request_id=current_request_id(), fields=fields or None
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status_code, headers=dict(headers or {})
    )


def _field_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie", "form"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_fields(errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    return [FieldError(field=_field_name(e["loc"]), message=e["msg"]) for e in errors]


async def _llmnet_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LLMNetError)
    return error_response(
        exc.status_code, exc.code, exc.detail, fields=exc.fields, headers=exc.headers
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = validation_fields(exc.errors())
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields)
    return error_response(422, "validation_error", f"Invalid request. {summary}", fields=fields)


async def _http_exception(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "error"
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    return error_response(exc.status_code, code, detail, headers=exc.headers)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(
        500, "internal_error", "Internal server error; the request id helps us find it."
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LLMNetError, _llmnet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)


# Documented on every route so clients and Swagger see the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Client error; `detail` says what to fix."},
}
