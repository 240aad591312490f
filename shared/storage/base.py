"""The storage interface every backend implements.

Besides whole objects written from one stream (`put`), an object can be assembled from
numbered parts sent separately, in any order and each as often as needed (S3's multipart
upload; part files on the local backend): `start_parts`, `put_part`, `complete_parts`,
`abort_parts`. Resumable uploads are built on these.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import google_crc32c

from shared.errors import BadRequest, Conflict, UnprocessableEntity

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class InvalidKey(BadRequest):
    code = "invalid_storage_key"


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str


class PartInProgress(Conflict):
    """Another copy of the same part is still arriving (the two would mix)."""

    code = "part_in_progress"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "2"})


class PartSizeMismatch(UnprocessableEntity):
    """A part's body is not as long as it was announced to be (nothing of it is kept)."""

    code = "invalid_part_length"


@dataclass(frozen=True, slots=True)
class StoredPart:
    """One part of an object being assembled: its 1-based number, size and CRC32C, and the
    tag the backend needs to assemble it (S3's ETag; the CRC32C on the local backend)."""

    number: int
    size: int
    crc32c: str
    etag: str


class Crc32c:
    """A part's checksum as it arrives, with hashlib's update/hexdigest: CRC32C (Castagnoli),
    as Google Cloud Storage checks objects and S3 can check parts. It tells whether the part
    arrived intact at several times SHA-256's speed (the CPU's CRC32 instruction, through
    google-crc32c); the object's SHA-256 is computed once, over the whole object."""

    def __init__(self) -> None:
        self._checksum = google_crc32c.Checksum()

    def update(self, data: bytes | memoryview) -> None:
        self._checksum.update(data)

    def hexdigest(self) -> str:
        digest: bytes = self._checksum.hexdigest()
        return digest.decode()


@dataclass(frozen=True, slots=True)
class AssembledObject:
    """An object assembled from parts; `sha256` where the backend computed it on the way
    (None: read the object back to know it)."""

    key: str
    size: int
    sha256: str | None


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

    async def start_parts(self, key: str) -> str:
        """Begin an object at `key` assembled from parts; returns the upload's id."""
        ...

    async def put_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        chunks: AsyncIterable[bytes],
        *,
        size: int,
        offset: int,
    ) -> StoredPart:
        """Store part `number` (from 1), which starts at byte `offset` of the object,
        replacing an earlier copy of it. The chunks must add up to exactly `size` bytes
        (PartSizeMismatch); NotFound when the upload is no longer open; PartInProgress while
        another copy of the part arrives. Until a copy is whole, the part may count as
        missing (the local backend writes it in place)."""
        ...

    async def complete_parts(
        self, key: str, upload_id: str, parts: Sequence[StoredPart]
    ) -> AssembledObject:
        """Assemble the parts, in number order, into the object at `key` (replacing it), and
        drop the upload. NotFound when a part is missing."""
        ...

    async def abort_parts(self, key: str, upload_id: str) -> None:
        """Drop an unfinished upload and its parts; an unknown upload is not an error."""
        ...
