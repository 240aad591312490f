"""The storage interface every backend implements."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from shared.errors import BadRequest

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class InvalidKey(BadRequest):
    code = "invalid_storage_key"


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str


def validate_key(key: str) -> str:
    """Keys are relative '/'-separated names of plain segments: no '..', no absolute paths."""
    parts = key.split("/")
    if not parts or not all(_SEGMENT.match(part) for part in parts):
        raise InvalidKey(f"Invalid storage key {key!r}.")
    return key


class Storage(Protocol):
    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredObject:
        """Store the chunks under `key`; over `max_bytes`, store nothing and raise
        PayloadTooLarge."""
        ...

    def open(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Read an object back chunk by chunk; NotFound if it does not exist."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Delete one object; deleting a missing object is not an error."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix/`; returns how many were removed."""
        ...
