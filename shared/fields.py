"""Field types every request schema shares, so what validation refuses is what the document says.

- `Text`: a string PostgreSQL can store. PostgreSQL refuses NUL (`\\x00`) in text and JSONB, so a
  NUL would otherwise surface as a 500 from deep inside a query. `Text` is a plain pydantic
  string with the pattern `NUL_FREE_PATTERN`: the rule is in the OpenAPI document, other
  constraints (`max_length`, ...) combine with it natively, and the error handler words its
  failure as "must not contain NUL" (`NUL_MESSAGE`). A field with its own pattern (usernames,
  slugs) needs no `Text`: its pattern leaves NUL out already.
- `storable(text)`: generated text (a model's, a provider's) made storable the same way: a NUL
  becomes U+FFFD, the replacement character, and so does half a UTF-16 surrogate pair (which
  a provider's JSON may carry), instead of failing the query that stores it.
- `refuse_null(...)` and `non_null_schema(...)`: update fields that may be left out but never
  be null (`name`, `visibility`, `is_model_developer`): None means "not sent", an explicit null
  is a 422 naming the field, and the document shows the type without `null`.
- `JSON_INTEGER`: a JSON integer, `434` or `434.0` as JSON Schema has it, but not `true` nor
  `"434"` (pydantic alone coerces both). Put it last, after the bounds, so they stay native
  (`minimum`/`maximum` in the document): `Annotated[int, Field(ge=1), JSON_INTEGER]`. Floats in
  bodies are `StrictFloat`, which refuses booleans and strings the same way.
- `INT32_MAX`: what an INTEGER column holds. `JSON_INT_MAX` (2**53 - 1): the largest integer
  every JSON client reads exactly (JavaScript's Number.MAX_SAFE_INTEGER); it also fits a BIGINT,
  so it bounds the fields stored in one (a larger bound would be a promise clients cannot use).
- `Timestamp`: a date-time with its timezone (RFC 3339, as `format: date-time` says), converted
  to UTC; one whose UTC form falls outside years 1-9999 is a 422, not a database error, and so
  is a number (pydantic alone would take it for a Unix time, which the document does not say).
- `document_bounds`: write limits that come from settings (password length, max_tokens) into an
  app's generated OpenAPI document, where a static `Field` cannot know them.

Exports: Text, NUL_FREE_PATTERN, NUL_MESSAGE, storable, refuse_null, non_null_schema,
JSON_INTEGER, INT32_MAX, JSON_INT_MAX, Timestamp, document_bounds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "INT32_MAX",
    "JSON_INTEGER",
    "JSON_INT_MAX",
    "NUL_FREE_PATTERN",
    "NUL_MESSAGE",
    "Text",
    "Timestamp",
    "document_bounds",
    "non_null_schema",
    "refuse_null",
    "storable",
]

NUL_FREE_PATTERN = r"^[^\x00]*$"
NUL_MESSAGE = "must not contain NUL (\\x00) characters; remove them"
INT32_MAX = 2**31 - 1
JSON_INT_MAX = 2**53 - 1

Text = Annotated[str, StringConstraints(pattern=NUL_FREE_PATTERN)]


def storable(text: str) -> str:
    """`text` as PostgreSQL text and JSONB hold it (see the module docstring)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "must be an integer")
    return value  # pydantic's int then refuses a fractional part


JSON_INTEGER = BeforeValidator(_json_integer)

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise PydanticCustomError(
            "datetime_format", "must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z"
        )
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:00-05:00 is in year 10000 in UTC
        raise PydanticCustomError("datetime_range", "is out of range once in UTC") from exc


Timestamp = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_in_utc)]


def _not_nullable(schema: dict[str, Any]) -> None:
    branches = [b for b in schema.pop("anyOf", ()) if b.get("type") != "null"]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    # `default: null` is how pydantic writes "not sent"; the type no longer admits it.
    schema.pop("default", None)


def non_null_schema(*names: str) -> Callable[[dict[str, Any]], None]:
    """A model's `json_schema_extra`: the properties `names` (guarded by `refuse_null`) are
    documented without `null`."""

    def extra(schema: dict[str, Any]) -> None:
        for name in names:
            _not_nullable(schema["properties"][name])

    return extra


def _refuse_null(cls: type, value: Any) -> Any:
    if value is None:
        raise PydanticCustomError(
            "null_refused", "may be left out, but not null; send a value or omit the field"
        )
    return value


def refuse_null(*names: str) -> Any:
    """A validator refusing an explicit null for `names`; assign it in the class body."""
    return field_validator(*names, mode="before")(_refuse_null)


def document_bounds(app: FastAPI, bounds: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
    """Set JSON Schema keywords on `(component, property)` pairs when the app's document is
    generated, e.g. `{("RegisterRequest", "password"): {"minLength": 10}}`; on an optional
    property they go to its non-null branch.

    For limits read from settings: validation checks the setting, and the document says it.
    """
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()
        if fresh:
            components = document.get("components", {}).get("schemas", {})
            for (component, name), keywords in bounds.items():
                target = components[component]["properties"][name]
                for branch in target.get("anyOf", ()):
                    if branch.get("type") != "null":
                        target = branch
                        break
                target.update(keywords)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
