"""The one normal form of a request path: checked once, routed and forwarded as the same path.

A gateway that routes on one reading of the path and forwards another can be walked past its
routing: `/api/v1/models/../../internal/...` was routed as a public models path and, forwarded
byte for byte, resolved upstream onto an internal endpoint. So the request target is decoded
here once, anything not already in normal form is refused (never repaired and forwarded), and
the upstream receives the canonical encoding of exactly the path the router saw.

Refused with 400 `invalid_path`: dot segments (`.`, `..`, also `..;x`), empty segments
(`//`), backslashes, percent-encoded `.` `/` `\\` or control characters, malformed escapes
(`%zz`, `%u002e`), double encoding (`%252e`), bytes that are not UTF-8 (overlong `%c0%ae`),
control characters, and characters whose compatibility form is a dot or a slash. A query
string is passed on untouched, but it must be printable ASCII (clients percent-encode it).

NormalPathMiddleware does this for every request the gateway receives, its own routes included,
before routing; it sets `scope["path"]` to the normal path, so Starlette routes on it too, and
keeps the NormalTarget for the proxy (`target_of`). It runs on every request: the common path
costs a few `in` tests on a short string.

Exports: NormalTarget, normal_target, target_of, NormalPathMiddleware, InvalidPath,
InvalidQuery.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import BadRequest, error_response

# Bytes a request target may hold as is; anything else must arrive percent-encoded.
_PRINTABLE = bytes(range(0x21, 0x7F))
# Fixed-width patterns: one linear scan each, no backtracking however long the path.
_MALFORMED_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_FORBIDDEN_ESCAPE = re.compile(rb"%(2[EeFf]|5[Cc]|[01][0-9A-Fa-f]|7[Ff])")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# Characters that must never arrive percent-encoded in a path: encoded, they hide the path's
# structure from whoever decodes it once (a router) and reveal it to whoever decodes again.
_NEVER_ENCODED = {
    ord("."): "'.' (%2e)",
    ord("/"): "'/' (%2f)",
    ord("\\"): "'\\' (%5c)",
}
# RFC 3986 sub-delims and ':' '@' are legal in a path segment; quote() keeps the unreserved.
_PATH_SAFE = "/!$&'()*+,;=:@"


class InvalidPath(BadRequest):
    code = "invalid_path"


class InvalidQuery(BadRequest):
    code = "invalid_query"


_SCOPE_KEY = "llmnet.normal_target"


@dataclass(frozen=True, slots=True)
class NormalTarget:
    path: str  # decoded: what routing and access rules look at
    target: str  # that same path, canonically encoded, plus the query: what the upstream gets


class NormalPathMiddleware:
    """Refuses a request whose path is not in normal form; routes the rest on that form.

    Installed inside the observability middleware (request id, access log, metrics), and
    outside the exception handlers, so it renders its refusals itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                target = normal_target(scope)
            except BadRequest as exc:
                response = error_response(exc.status_code, exc.code, exc.detail)
                await response(scope, receive, send)
                return
            scope[_SCOPE_KEY] = target
            scope["path"] = target.path
        await self.app(scope, receive, send)


def target_of(scope: Mapping[str, Any]) -> NormalTarget:
    """The request's NormalTarget, as the middleware found it (or computed here)."""
    target: NormalTarget | None = scope.get(_SCOPE_KEY)
    return target if target is not None else normal_target(scope)


def normal_target(scope: Mapping[str, Any]) -> NormalTarget:
    """The request's path in normal form, or InvalidPath/InvalidQuery saying what is wrong."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        # A server without raw_path (uvicorn always sets it) has decoded already.
        raw = quote(scope["path"], safe=_PATH_SAFE).encode("ascii")
    path = _decode(raw)
    _check_structure(path)
    target = quote(path, safe=_PATH_SAFE)
    query: bytes = scope.get("query_string") or b""
    if query:
        if query.translate(None, _PRINTABLE):
            raise InvalidQuery(
                "The query string holds spaces, control characters or raw non-ASCII bytes; "
                "percent-encode them."
            )
        target += "?" + query.decode("ascii")
    return NormalTarget(path, target)


def _decode(raw: bytes) -> str:
    if raw.translate(None, _PRINTABLE):
        raise InvalidPath(
            "The path holds spaces, control characters or raw non-ASCII bytes; "
            "percent-encode them (as UTF-8)."
        )
    if b"%" not in raw:
        return raw.decode("ascii")
    if _MALFORMED_ESCAPE.search(raw):
        raise InvalidPath(
            "The path has a malformed percent-escape: '%' must be followed by two hex "
            "digits (write a literal '%' as %25)."
        )
    if forbidden := _FORBIDDEN_ESCAPE.search(raw):
        value = int(forbidden.group(1), 16)
        if value in _NEVER_ENCODED:
            raise InvalidPath(
                f"The path has an encoded {_NEVER_ENCODED[value]}, which is not accepted: "
                "send '.' as is, and '/' only as the segment separator."
            )
        raise InvalidPath(
            f"The path has an encoded control character ({forbidden.group().decode()}), "
            "which is not accepted."
        )
    try:
        path = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        # Also overlong forms such as %c0%ae for '.', which strict UTF-8 decoding rejects.
        raise InvalidPath("The path's percent-encoded bytes are not valid UTF-8.") from exc
    if "%" in path and _ESCAPE.search(path):
        raise InvalidPath(
            "The path is percent-encoded twice (e.g. %252e); encode each character once."
        )
    return path


def _check_structure(path: str) -> None:
    if not path.startswith("/"):
        raise InvalidPath("The path must start with '/'.")
    _check_segments(path)
    if not path.isascii():
        for char in path:
            if unicodedata.category(char) == "Cc":
                raise InvalidPath("The path has a control character, which is not accepted.")
        # Some servers and file systems fold compatibility forms (fullwidth dot and solidus
        # U+FF0E, U+FF0F into '.' and '/'): such a path is judged in its folded form too.
        folded = unicodedata.normalize("NFKC", path)
        if folded != path:
            if folded.count("/") != path.count("/"):
                raise InvalidPath("The path has a character that folds into '/'.")
            _check_segments(folded)


def _check_segments(path: str) -> None:
    if "\\" in path:
        raise InvalidPath("The path has a backslash, which is not accepted; use '/'.")
    if "//" in path:
        raise InvalidPath("The path has an empty segment ('//'); remove the extra '/'.")
    if "/." in path:
        for segment in path.split("/"):
            # '..;x' is '..' to servers that strip ';' parameters; '.. ' to ones that trim.
            if segment.startswith(".") and segment.partition(";")[0].rstrip(" ") in {".", ".."}:
                raise InvalidPath(
                    "The path has a '.' or '..' segment, which is not accepted; "
                    "send the path without them."
                )
