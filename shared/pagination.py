"""Cursor pagination: opaque cursors over a sort key, and the page shape every list returns.

A cursor is the URL-safe base64 (unpadded) of a JSON list of the sort key's values. Clients can
forge one, so `decode_cursor` checks each value against the kind the caller expects (an integer
its column holds, a timestamp with a timezone, a UUID, NUL-free text): a bad cursor is a 422,
never a query that fails in the database.

`keyset_page` runs one page of a query in a keyset order and returns it with the next
cursor: every list endpoint uses it rather than writing the `WHERE (a, b) > (...)` by hand.

Exports: Page, LimitQuery, CursorQuery, CURSOR_PATTERN, CursorPart, SortKey, keyset_page,
encode_cursor, decode_cursor, InvalidCursor.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, and_, or_, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from shared.errors import UnprocessableEntity
from shared.fields import INT32_MAX

CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
_CURSOR = re.compile(CURSOR_PATTERN)
_BIGINT_MAX = 2**63 - 1


def _document_pattern(schema: dict[str, Any]) -> None:
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch["pattern"] = CURSOR_PATTERN


LimitQuery = Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=512,
        # Documented here, checked by decode_cursor: any bad cursor is one `invalid_cursor`.
        json_schema_extra=_document_pattern,
        description="`next_cursor` from the previous page (URL-safe base64, as given).",
    ),
]


class CursorPart(Enum):
    """What one value of a cursor must be."""

    INT32 = "int32"
    INT64 = "int64"
    TEXT = "text"
    TIMESTAMP = "timestamp"
    UUID = "uuid"


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


def _integer(value: Any, largest: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and -largest - 1 <= value <= largest:
        return value
    raise InvalidCursor()


def _part(value: Any, kind: CursorPart) -> Any:
    if kind is CursorPart.INT32:
        return _integer(value, INT32_MAX)
    if kind is CursorPart.INT64:
        return _integer(value, _BIGINT_MAX)
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidCursor()
    try:
        if kind is CursorPart.TIMESTAMP:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise InvalidCursor()
            return moment
        if kind is CursorPart.UUID:
            return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidCursor() from exc
    return value


def decode_cursor(cursor: str, *kinds: CursorPart) -> tuple[Any, ...]:
    """The values `encode_cursor` packed, one per kind, each checked (InvalidCursor if not)."""
    if not _CURSOR.fullmatch(cursor):
        raise InvalidCursor()
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(values, list) or len(values) != len(kinds):
        raise InvalidCursor()
    return tuple(_part(value, kind) for value, kind in zip(values, kinds, strict=True))


@dataclass(frozen=True, slots=True)
class SortKey:
    """One column of a keyset order: the column, what its cursor value is, and its direction."""

    column: ColumnElement[Any] | InstrumentedAttribute[Any]
    kind: CursorPart
    descending: bool = False


def _after(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order of `keys` (a row-value comparison when every
    key runs the same way, which PostgreSQL answers from a matching index)."""
    if len({key.descending for key in keys}) == 1:
        columns, bound = tuple_(*(k.column for k in keys)), tuple_(*values)
        return columns < bound if keys[0].descending else columns > bound
    clauses = []
    for i, key in enumerate(keys):
        ties = [k.column == v for k, v in zip(keys[:i], values[:i], strict=True)]
        step = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(and_(*ties, step))
    return or_(*clauses)


async def keyset_page(
    session: AsyncSession,
    query: Select[T],
    keys: Sequence[SortKey],
    *,
    cursor: str | None,
    limit: int,
    cursor_of: Callable[[T], Sequence[Any]] | None = None,
) -> tuple[list[T], str | None]:
    """One page of `query` (which selects one entity) in `keys` order, after `cursor`.

    Returns the rows and the cursor of the next page (None on the last). `cursor_of` gives a
    row's sort values when they are not attributes of the entity named like the columns (a
    join's column, say). The last key must make the order total (an id).
    """
    if cursor:
        query = query.where(_after(keys, decode_cursor(cursor, *(k.kind for k in keys))))
    order = [k.column.desc() if k.descending else k.column.asc() for k in keys]
    rows = list(await session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    values = cursor_of(last) if cursor_of else [getattr(last, _name(k)) for k in keys]
    return rows[:limit], encode_cursor(*(_cursor_value(v) for v in values))


def _name(key: SortKey) -> str:
    name = getattr(key.column, "key", None)
    if not isinstance(name, str):
        raise TypeError("a computed sort key needs cursor_of to read its value from a row")
    return name


def _cursor_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
