"""Cursor pagination: opaque cursors over a sort key, and the page shape every list returns.

Exports: Page, LimitQuery, CursorQuery, encode_cursor, decode_cursor, InvalidCursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from shared.errors import UnprocessableEntity

LimitQuery = Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` from the previous page.")
]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class InvalidCursor(UnprocessableEntity):
    code = "invalid_cursor"

    def __init__(self) -> None:
        super().__init__("The cursor is not valid; pass a next_cursor from a previous page.")


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, parts: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(values, list) or len(values) != parts:
        raise InvalidCursor()
    return values
