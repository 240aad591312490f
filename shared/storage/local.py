"""Filesystem storage: objects are files under a root directory.

An object assembled from parts is written in place: `.multipart/<upload id>/` under the root
(keys never start with '.', so no key reaches it) holds the object's data file, each part
written at its offset, a marker file per part that is whole, and a lock file. Completing it
checks the markers and renames the data file into place, so the bytes are written once, as
a one-request upload writes them. The object's SHA-256 is computed as its parts arrive (see
_RunningHash), so completing it costs no pass over its bytes either.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import threading
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from pathlib import Path

import anyio

from shared.errors import NotFound, PayloadTooLarge
from shared.storage.base import (
    AssembledObject,
    Crc32c,
    InvalidKey,
    PartInProgress,
    PartSizeMismatch,
    StoredObject,
    StoredPart,
    validate_key,
)

_PARTS_DIR = ".multipart"
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_WRITE_BYTES = 1 << 20
_DATA = "data"
_LOCK = "lock"


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
        directory = self._parts(upload_id)

        def _start() -> None:
            directory.mkdir(parents=True)
            (directory / _DATA).touch()
            (directory / _LOCK).touch()

        await anyio.to_thread.run_sync(_start)
        return upload_id

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
        validate_key(key)
        writer = _PartWriter(self._parts(upload_id), upload_id, number, offset, size)
        try:
            await anyio.to_thread.run_sync(writer.begin)
            # Hashed and written a MiB at a time in a worker thread (hashlib lets go of the
            # GIL): the event loop only gathers bytes, and parts in flight hash in parallel.
            pending: list[bytes] = []
            buffered = 0
            async for chunk in chunks:
                if writer.received + buffered + len(chunk) > size:
                    raise PartSizeMismatch(f"Part {number} is longer than {size} bytes.")
                pending.append(chunk)
                buffered += len(chunk)
                if buffered >= _WRITE_BYTES:
                    await anyio.to_thread.run_sync(writer.write, pending)
                    pending, buffered = [], 0
            if pending:
                await anyio.to_thread.run_sync(writer.write, pending)
            if writer.received != size:
                raise PartSizeMismatch(f"Part {number} has {writer.received} bytes, not {size}.")
            crc32c = await anyio.to_thread.run_sync(writer.finish)
        finally:
            writer.close()
        running = self._running.setdefault(upload_id, _RunningHash())
        await anyio.to_thread.run_sync(running.stored, self._parts(upload_id), number)
        return StoredPart(number=number, size=size, crc32c=crc32c, etag=crc32c)

    async def complete_parts(
        self, key: str, upload_id: str, parts: Sequence[StoredPart]
    ) -> AssembledObject:
        target = self._path(key)
        directory = self._parts(upload_id)
        running = self._running.pop(upload_id, None)

        def _assemble() -> AssembledObject:
            ordered = sorted(parts, key=lambda p: p.number)
            with _locked(directory, upload_id, fcntl.LOCK_EX):
                total = 0
                for part in ordered:
                    written = _read_marker(directory, part.number)
                    if written is None or written[1] != part.size:
                        raise NotFound(f"Part {part.number} of upload {upload_id!r} is missing.")
                    total += part.size
                # The parts lie in place already: the object is the data file, renamed.
                os.truncate(directory / _DATA, total)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(directory / _DATA, target)
            sha256 = running.hexdigest(len(ordered)) if running is not None else None
            shutil.rmtree(directory, ignore_errors=True)
            return AssembledObject(key=key, size=total, sha256=sha256)

        return await anyio.to_thread.run_sync(_assemble)

    async def abort_parts(self, key: str, upload_id: str) -> None:
        validate_key(key)
        directory = self._parts(upload_id)
        self._running.pop(upload_id, None)
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(directory, ignore_errors=True))


class _Closed(Exception):
    """The upload's data file is gone: completed or aborted while a part arrived."""


@contextlib.contextmanager
def _locked(directory: Path, upload_id: str, operation: int) -> Iterator[int]:
    """The upload's lock: shared by part writers (one chunk at a time), exclusive for
    completing it, so the data file is never renamed halfway through a write."""
    try:
        fd = os.open(directory / _LOCK, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise NotFound(f"No unfinished upload {upload_id!r}.") from exc
    try:
        fcntl.flock(fd, operation)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _read_marker(directory: Path, number: int) -> tuple[int, int] | None:
    """(offset, size) of part `number` if a whole copy of it lies in the data file."""
    try:
        offset, size = (directory / str(number)).read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    return int(offset), int(size)


class _PartWriter:
    """Writes one copy of a part in place into the upload's data file (called in worker
    threads). Until the copy is whole the part counts as missing (its marker is removed
    first); two copies of one part arriving at once would mix, so the second is refused."""

    def __init__(self, directory: Path, upload_id: str, number: int, offset: int, size: int):
        self.directory = directory
        self.upload_id = upload_id
        self.number = number
        self.offset = offset
        self.size = size
        self.received = 0
        self._checksum = Crc32c()
        self._busy: int | None = None
        self._data: int | None = None

    def _gone(self) -> NotFound:
        return NotFound(f"No unfinished upload {self.upload_id!r}.")

    def begin(self) -> None:
        try:
            self._busy = os.open(self.directory / f"{self.number}.busy", os.O_CREAT | os.O_RDWR)
        except FileNotFoundError as exc:
            raise self._gone() from exc
        try:
            fcntl.flock(self._busy, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise PartInProgress(
                f"Part {self.number} is arriving in another request; send it again once that "
                "one has ended."
            ) from exc
        with _locked(self.directory, self.upload_id, fcntl.LOCK_SH):
            (self.directory / str(self.number)).unlink(missing_ok=True)
            try:
                self._data = os.open(self.directory / _DATA, os.O_WRONLY)
            except FileNotFoundError as exc:
                raise self._gone() from exc

    def write(self, chunks: list[bytes]) -> None:
        assert self._data is not None
        with _locked(self.directory, self.upload_id, fcntl.LOCK_SH):
            if not (self.directory / _DATA).exists():
                raise self._gone()
            for chunk in chunks:
                self._checksum.update(chunk)
                view = memoryview(chunk)
                while view:
                    written = os.pwrite(self._data, view, self.offset + self.received)
                    self.received += written
                    view = view[written:]

    def finish(self) -> str:
        """Mark the part whole; returns its CRC32C."""
        with _locked(self.directory, self.upload_id, fcntl.LOCK_SH):
            if not (self.directory / _DATA).exists():
                raise self._gone()
            marker = self.directory / str(self.number)
            partial = marker.with_name(f".{self.number}.{uuid.uuid4().hex}")
            partial.write_text(f"{self.offset} {self.size}")
            os.replace(partial, marker)
        return self._checksum.hexdigest()

    def close(self) -> None:
        for fd in (self._data, self._busy):
            if fd is not None:
                os.close(fd)
        self._data = self._busy = None


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
        """Part `number` is whole in the data file (called in a worker thread)."""
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
                while not self._spoiled and (span := _read_marker(directory, self._next)):
                    try:
                        self._hash_span(directory / _DATA, *span)
                    except FileNotFoundError:
                        break
                    self._next += 1
            finally:
                self._lock.release()

    def _hash_span(self, data: Path, offset: int, size: int) -> None:
        buffer = memoryview(bytearray(_WRITE_BYTES))
        with data.open("rb", buffering=0) as source:
            source.seek(offset)
            while size > 0:
                read = source.readinto(buffer[: min(_WRITE_BYTES, size)])
                if not read:
                    break
                self._digest.update(buffer[:read])
                size -= read

    def hexdigest(self, parts: int) -> str | None:
        with self._lock:
            if self._spoiled or self._next != parts + 1:
                return None
            return self._digest.hexdigest()
