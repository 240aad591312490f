"""The local filesystem storage backend."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from shared.errors import NotFound, PayloadTooLarge
from shared.storage import InvalidKey, LocalStorage


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _read(storage: LocalStorage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key, chunk_size=3)])


async def test_put_read_delete(tmp_path):
    storage = LocalStorage(tmp_path)
    stored = await storage.put("models/a/config.json", _chunks(b"{", b'"x": 1', b"}"))
    assert stored.size == 8
    assert stored.sha256 == hashlib.sha256(b'{"x": 1}').hexdigest()
    assert await _read(storage, "models/a/config.json") == b'{"x": 1}'
    assert await storage.exists("models/a/config.json")
    await storage.delete("models/a/config.json")
    assert not await storage.exists("models/a/config.json")
    with pytest.raises(NotFound):
        await _read(storage, "models/a/config.json")


async def test_over_the_cap_stores_nothing(tmp_path):
    storage = LocalStorage(tmp_path)
    with pytest.raises(PayloadTooLarge):
        await storage.put("big.bin", _chunks(b"a" * 10, b"b" * 10), max_bytes=15)
    assert list(tmp_path.rglob("*")) == []


@pytest.mark.parametrize("key", ["../escape", "/abs/path", "a/../../b", "a//b", ".hidden", ""])
async def test_unsafe_keys_are_refused(tmp_path, key):
    with pytest.raises(InvalidKey):
        await LocalStorage(tmp_path / "root").put(key, _chunks(b"x"))
    assert not (tmp_path / "escape").exists()


async def test_delete_prefix(tmp_path):
    storage = LocalStorage(tmp_path)
    for name in ("a", "b", "c"):
        await storage.put(f"versions/v1/{name}", _chunks(b"1"))
    await storage.put("versions/v2/a", _chunks(b"2"))
    assert await storage.delete_prefix("versions/v1") == 3
    assert not await storage.exists("versions/v1/a")
    assert await storage.exists("versions/v2/a")
    assert await storage.delete_prefix("versions/none") == 0
