"""Filesystem storage: objects are files under a root directory."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import anyio

from shared.errors import NotFound, PayloadTooLarge
from shared.storage.base import StoredObject, validate_key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

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
