"""Typed errors: every API error carries the platform's `code`, `detail` and request id.

LLMNetError
├── APIConnectionError          the platform could not be reached (no HTTP answer)
└── APIError                    an HTTP error answer: status_code, code, detail, request_id
    ├── BadRequest (400)        ├── AuthenticationError (401)
    ├── PermissionDenied (403)  ├── NotFound (404)
    ├── Conflict (409)          ├── PayloadTooLarge (413)
    ├── ValidationError (422)   ├── RateLimited (429, retry_after)
    └── ServerError (5xx, retry_after for 503)
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "LLMNetError",
    "NotFound",
    "PartCorrupted",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "ValidationError",
    "error_from_response",
]


class LLMNetError(Exception):
    """Base of every error this client raises."""


class PartCorrupted(LLMNetError):
    """An upload's part kept arriving altered (the server's CRC32C of it differs)."""


class APIConnectionError(LLMNetError):
    """No answer: the connection failed, was cut, or timed out."""


class APIError(LLMNetError):
    status_code: int = 0

    def __init__(
        self,
        detail: str,
        *,
        status_code: int,
        code: str,
        request_id: str | None = None,
        fields: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.fields = fields or []
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = f"{self.status_code} {self.code}: {self.detail}"
        return f"{text} (request id {self.request_id})" if self.request_id else text


class BadRequest(APIError):
    pass


class AuthenticationError(APIError):
    pass


class PermissionDenied(APIError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class PayloadTooLarge(APIError):
    pass


class ValidationError(APIError):
    pass


class RateLimited(APIError):
    pass


class ServerError(APIError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to treat as "no hint"


def error_from_body(status_code: int, body: bytes, headers: httpx.Headers) -> APIError:
    """The typed error for an error answer whose body has been read."""
    code, detail, fields = "http_error", f"HTTP {status_code}", None
    request_id = headers.get("x-request-id")
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        code = str(parsed.get("code") or code)
        raw_detail = parsed.get("detail")
        detail = raw_detail if isinstance(raw_detail, str) else json.dumps(raw_detail)
        request_id = parsed.get("request_id") or request_id
        fields = parsed.get("fields") if isinstance(parsed.get("fields"), list) else None
    elif body:
        detail = body.decode("utf-8", "replace")[:500]
    kind = _BY_STATUS.get(status_code, ServerError if status_code >= 500 else APIError)
    retry = headers.get("retry-after")
    retry_after: float | None = None
    if retry is not None:
        try:
            retry_after = max(0.0, float(retry))
        except ValueError:
            retry_after = None
    return kind(
        detail,
        status_code=status_code,
        code=code,
        request_id=request_id,
        fields=fields,
        retry_after=retry_after,
    )


def error_from_response(response: httpx.Response) -> APIError:
    """The typed error for a read error response."""
    return error_from_body(response.status_code, response.content, response.headers)
