"""Filesystem storage: objects are files under a root directory.

An object assembled from parts keeps its parts as files in `.multipart/<upload id>/` under the
root (keys never start with '.', so no key reaches them) until it is completed, when they are
copied in order into the object (copy_file_range: the kernel copies, no bytes pass through
Python) and removed. The object's SHA-256 is computed as its parts arrive (see _RunningHash),
so completing it costs no pass over its bytes in Python.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import anyio

from shared.errors import NotFound, PayloadTooLarge
from shared.storage.base import (
    AssembledObject,
    InvalidKey,
    PartSizeMismatch,
    StoredObject,
    StoredPart,
    validate_key,
)

_PARTS_DIR = ".multipart"
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_COPY_CHUNK = 64 << 20
_WRITE_BYTES = 1 << 20


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        # Uploads assembled from parts: the running SHA-256 of each (see _RunningHash).
        self._running: dict[str, _RunningHash] = {}

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredObject:
        target = self._path(key)
        await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed into place: readers never see half a file.
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        digest = hashlib.sha256()
        size = 0
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise PayloadTooLarge(f"The object is larger than {max_bytes} bytes.")
                    digest.update(chunk)
                    await out.write(chunk)
            await anyio.to_thread.run_sync(os.replace, partial, target)
        except BaseException:
            # Shielded: a cancelled upload must still remove its partial file.
            with anyio.CancelScope(shield=True):
                await anyio.Path(partial).unlink(missing_ok=True)
            raise
        return StoredObject(key=key, size=size, sha256=digest.hexdigest())

    async def open(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await anyio.open_file(path, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"No stored object {key!r}.") from exc
        async with handle:
            while chunk := await handle.read(chunk_size):
                yield chunk

    async def exists(self, key: str) -> bool:
        return await anyio.Path(self._path(key)).is_file()

    async def delete(self, key: str) -> None:
        await anyio.Path(self._path(key)).unlink(missing_ok=True)

    async def delete_prefix(self, prefix: str) -> int:
        directory = self._path(prefix)
        if not await anyio.Path(directory).is_dir():
            return 0

        def _remove() -> int:
            count = sum(1 for p in directory.rglob("*") if p.is_file())
            shutil.rmtree(directory)
            return count

        return await anyio.to_thread.run_sync(_remove)

    # -- objects assembled from parts ---------------------------------------------------------
    def _parts(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise InvalidKey(f"Invalid upload id {upload_id!r}.")
        return self.root / _PARTS_DIR / upload_id

    async def start_parts(self, key: str) -> str:
        validate_key(key)
        upload_id = uuid.uuid4().hex
        await anyio.Path(self._parts(upload_id)).mkdir(parents=True)
        return upload_id

    async def put_part(
        self, key: str, upload_id: str, number: int, chunks: AsyncIterable[bytes], *, size: int
    ) -> StoredPart:
        validate_key(key)
        directory = self._parts(upload_id)
        partial = directory / f".{number}.{uuid.uuid4().hex}.partial"
        digest = hashlib.sha256()
        received = 0
        try:
            try:
                out = await anyio.to_thread.run_sync(partial.open, "wb")
            except FileNotFoundError as exc:
                raise NotFound(f"No unfinished upload {upload_id!r} of {key!r}.") from exc
            try:
                # Hashed and written a MiB at a time in a worker thread (hashlib lets go of the
                # GIL): the event loop only gathers bytes, and parts in flight hash in parallel.
                pending: list[bytes] = []
                buffered = 0
                async for chunk in chunks:
                    received += len(chunk)
                    if received > size:
                        raise PartSizeMismatch(f"Part {number} is longer than {size} bytes.")
                    pending.append(chunk)
                    buffered += len(chunk)
                    if buffered >= _WRITE_BYTES:
                        await anyio.to_thread.run_sync(_hash_and_write, digest, out, pending)
                        pending, buffered = [], 0
                if pending:
                    await anyio.to_thread.run_sync(_hash_and_write, digest, out, pending)
            finally:
                out.close()
            if received != size:
                raise PartSizeMismatch(f"Part {number} has {received} bytes, not {size}.")
            try:
                # Atomic: a part re-sent meanwhile is replaced whole, never mixed.
                await anyio.to_thread.run_sync(os.replace, partial, directory / str(number))
            except FileNotFoundError as exc:  # the upload was aborted meanwhile
                raise NotFound(f"No unfinished upload {upload_id!r} of {key!r}.") from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.Path(partial).unlink(missing_ok=True)
            raise
        running = self._running.setdefault(upload_id, _RunningHash())
        await anyio.to_thread.run_sync(running.stored, directory, number)
        sha256 = digest.hexdigest()
        return StoredPart(number=number, size=size, sha256=sha256, etag=sha256)

    async def complete_parts(
        self, key: str, upload_id: str, parts: Sequence[StoredPart]
    ) -> AssembledObject:
        target = self._path(key)
        directory = self._parts(upload_id)
        running = self._running.pop(upload_id, None)

        def _assemble() -> AssembledObject:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
            total = 0
            ordered = sorted(parts, key=lambda p: p.number)
            try:
                with partial.open("wb") as out:
                    for part in ordered:
                        try:
                            source = (directory / str(part.number)).open("rb")
                        except FileNotFoundError as exc:
                            raise NotFound(
                                f"Part {part.number} of upload {upload_id!r} is missing."
                            ) from exc
                        with source:
                            size = os.fstat(source.fileno()).st_size
                            if size != part.size:
                                raise NotFound(
                                    f"Part {part.number} of upload {upload_id!r} has {size} "
                                    f"bytes, not {part.size}."
                                )
                            _copy(source, out, size)
                        total += size
                os.replace(partial, target)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            sha256 = running.hexdigest(len(ordered)) if running is not None else None
            shutil.rmtree(directory, ignore_errors=True)
            return AssembledObject(key=key, size=total, sha256=sha256)

        return await anyio.to_thread.run_sync(_assemble)

    async def abort_parts(self, key: str, upload_id: str) -> None:
        validate_key(key)
        directory = self._parts(upload_id)
        self._running.pop(upload_id, None)
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(directory, ignore_errors=True))


def _hash_and_write(digest: Any, out: BinaryIO, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(chunk)
        out.write(chunk)


class _RunningHash:
    """The SHA-256 of an upload's parts 1..n-1 in order, advanced as parts arrive, so that
    completing it needs no second pass over the bytes.

    Kept per process: parts that arrive at another process (or after a restart) leave it
    short, and a part replaced after it was hashed spoils it; either way `hexdigest` then
    answers None and the caller hashes the assembled object itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._digest = hashlib.sha256()
        self._next = 1
        self._spoiled = False

    def stored(self, directory: Path, number: int) -> None:
        """Part `number` is in place (called in a worker thread)."""
        if number < self._next:
            with self._lock:  # waits for a pass that may be reading the old copy
                if number < self._next:
                    self._spoiled = True
        # One thread advances at a time; one that finds the lock taken leaves its part to the
        # holder, who looks again for the next part after letting go.
        while not self._spoiled and (directory / str(self._next)).exists():
            if not self._lock.acquire(blocking=False):
                return
            try:
                while not self._spoiled:
                    try:
                        source = (directory / str(self._next)).open("rb")
                    except FileNotFoundError:
                        break
                    with source:
                        while chunk := source.read(_WRITE_BYTES):
                            self._digest.update(chunk)
                    self._next += 1
            finally:
                self._lock.release()

    def hexdigest(self, parts: int) -> str | None:
        with self._lock:
            if self._spoiled or self._next != parts + 1:
                return None
            return self._digest.hexdigest()


def _copy(source: BinaryIO, out: BinaryIO, size: int) -> None:
    """Append `size` bytes of `source` to `out`, in the kernel where it can."""
    out.flush()
    copied = 0
    try:
        while copied < size:
            count = min(_COPY_CHUNK, size - copied)
            sent = os.copy_file_range(source.fileno(), out.fileno(), count)
            if sent == 0:
                break
            copied += sent
    except OSError:
        pass  # another filesystem or kernel: copy the rest by hand
    if copied < size:
        source.seek(copied)
        out.seek(0, os.SEEK_END)
        shutil.copyfileobj(source, out, 1 << 20)
