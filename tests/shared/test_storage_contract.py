"""One behaviour suite for every storage backend: local (in tmp_path) and S3 (against moto's
standalone server on loopback, a fresh bucket per test).

Each backend comes with an independent observer (`stored`): the files under the local root,
or the bucket's objects and pending multipart uploads as boto3 sees them, so "stores
nothing" is checked on the server, not through the backend under test.
"""

from __future__ import annotations

import functools
import hashlib
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.errors import NotFound, PayloadTooLarge, ServiceUnavailable
from shared.settings import CommonSettings
from shared.storage import InvalidKey, LocalStorage, Storage
from shared.storage.factory import create_storage
from shared.storage.s3 import S3Storage
from tests.shared.s3_server import ACCESS_KEY, REGION, SECRET_KEY, moto_s3_server

MIB = 1 << 20
PART = 5 * MIB  # S3's minimum part size, so a ~12 MiB object takes three parts.
LARGE = 12 * MIB + 12_345  # deliberately not a multiple of the part or chunk size


@dataclass
class Backend:
    name: str
    storage: Storage
    stored: Callable[[], list[str]]
    """Everything the backend holds: objects, partial files, pending multipart uploads."""
    container_exists: Callable[[], bool]
    """Whether the root directory / bucket exists."""


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def s3_client(s3_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://{s3_endpoint}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}),
    )


def _local_backend(root: Path) -> Backend:
    def stored() -> list[str]:
        if not root.exists():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return Backend("local", LocalStorage(root), stored, root.exists)


def _s3_backend(endpoint: str, client: Any) -> Backend:
    bucket = f"contract-{uuid.uuid4().hex}"

    def container_exists() -> bool:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError:
            return False
        return True

    def stored() -> list[str]:
        if not container_exists():
            return []
        names = [
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])
        ]
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return sorted(names + [f"(pending upload) {u['Key']}" for u in uploads])

    # No region: the default configuration, where minio asks the server for the bucket's.
    storage = S3Storage(endpoint, ACCESS_KEY, SECRET_KEY, bucket, part_size=PART)
    return Backend("s3", storage, stored, container_exists)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return _local_backend(tmp_path / "storage")
    return _s3_backend(request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_client"))


# -- helpers --------------------------------------------------------------------------------


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _pattern(total: int, chunk: int = 256 * 1024, seed: int = 7) -> Iterator[bytes]:
    """`total` pseudo-random bytes in chunks, generated as they are asked for."""
    rng = random.Random(seed)
    while total > 0:
        size = min(chunk, total)
        total -= size
        yield rng.randbytes(size)


def _pattern_digest(total: int) -> str:
    digest = hashlib.sha256()
    for chunk in _pattern(total):
        digest.update(chunk)
    return digest.hexdigest()


async def _stream(total: int) -> AsyncIterator[bytes]:
    for chunk in _pattern(total):
        yield chunk


async def _read(storage: Storage, key: str, chunk_size: int = 3) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key, chunk_size=chunk_size)])


# -- the contract ---------------------------------------------------------------------------


async def test_put_reads_back_with_size_and_sha256(backend: Backend) -> None:
    stored = await backend.storage.put("models/a/config.json", _chunks(b"{", b'"x": 1', b"}"))
    assert stored.key == "models/a/config.json"
    assert stored.size == 8
    assert stored.sha256 == hashlib.sha256(b'{"x": 1}').hexdigest()
    assert await _read(backend.storage, "models/a/config.json") == b'{"x": 1}'
    assert [len(c) async for c in backend.storage.open("models/a/config.json", chunk_size=3)] == [
        3,
        3,
        2,
    ]
    assert await backend.storage.exists("models/a/config.json")
    assert backend.stored() == ["models/a/config.json"]


async def test_empty_object(backend: Backend) -> None:
    stored = await backend.storage.put("empty", _chunks())
    assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await backend.storage.exists("empty")
    assert await _read(backend.storage, "empty") == b""


async def test_put_replaces_an_existing_object(backend: Backend) -> None:
    await backend.storage.put("k", _chunks(b"first version"))
    await backend.storage.put("k", _chunks(b"second"))
    assert await _read(backend.storage, "k") == b"second"
    assert backend.stored() == ["k"]


async def test_object_larger_than_a_part_reads_back_identical(backend: Backend) -> None:
    stored = await backend.storage.put("weights/model.safetensors", _stream(LARGE))
    assert stored.size == LARGE
    assert stored.sha256 == _pattern_digest(LARGE)
    digest = hashlib.sha256()
    size = 0
    async for chunk in backend.storage.open("weights/model.safetensors", chunk_size=MIB):
        assert 0 < len(chunk) <= MIB
        digest.update(chunk)
        size += len(chunk)
    assert (size, digest.hexdigest()) == (LARGE, stored.sha256)
    assert backend.stored() == ["weights/model.safetensors"]


@pytest.mark.parametrize(
    ("total", "cap"),
    [(20, 15), (LARGE, 11 * MIB)],
    ids=["small", "after-two-parts"],
)
async def test_over_the_cap_stores_nothing(backend: Backend, total: int, cap: int) -> None:
    with pytest.raises(PayloadTooLarge):
        await backend.storage.put("big.bin", _stream(total), max_bytes=cap)
    assert backend.stored() == []
    assert not await backend.storage.exists("big.bin")


async def test_over_the_cap_keeps_the_previous_object(backend: Backend) -> None:
    await backend.storage.put("big.bin", _chunks(b"old"))
    with pytest.raises(PayloadTooLarge):
        await backend.storage.put("big.bin", _stream(LARGE), max_bytes=11 * MIB)
    assert backend.stored() == ["big.bin"]
    assert await _read(backend.storage, "big.bin") == b"old"


async def test_a_failing_source_stores_nothing(backend: Backend) -> None:
    async def breaks() -> AsyncIterator[bytes]:
        async for chunk in _stream(11 * MIB):
            yield chunk
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await backend.storage.put("broken.bin", breaks())
    assert backend.stored() == []


async def test_a_cancelled_put_stores_nothing(backend: Backend) -> None:
    stalled = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        async for chunk in _stream(11 * MIB):  # two parts already sent to S3
            yield chunk
        stalled.set()
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(functools.partial(backend.storage.put, "stalled.bin", stalls()))
        await stalled.wait()
        tasks.cancel_scope.cancel()
    assert backend.stored() == []


async def test_missing_keys(backend: Backend) -> None:
    # Before anything was written (no directory, no bucket) and after.
    for _ in range(2):
        with pytest.raises(NotFound):
            await _read(backend.storage, "nope/missing.bin")
        assert not await backend.storage.exists("nope/missing.bin")
        await backend.storage.delete("nope/missing.bin")
        assert await backend.storage.delete_prefix("nope") == 0
        assert not backend.container_exists() or backend.stored() == ["other"]
        await backend.storage.put("other", _chunks(b"x"))


async def test_delete_is_idempotent(backend: Backend) -> None:
    await backend.storage.put("a/b", _chunks(b"1"))
    await backend.storage.put("a/c", _chunks(b"2"))
    await backend.storage.delete("a/b")
    await backend.storage.delete("a/b")
    assert not await backend.storage.exists("a/b")
    assert backend.stored() == ["a/c"]


async def test_delete_prefix_counts(backend: Backend) -> None:
    for name in ("a", "b", "sub/c"):
        await backend.storage.put(f"versions/v1/{name}", _chunks(b"1"))
    await backend.storage.put("versions/v2/a", _chunks(b"2"))
    await backend.storage.put("versions/v1x/a", _chunks(b"3"))  # shares the string prefix
    assert await backend.storage.delete_prefix("versions/v1") == 3
    assert backend.stored() == ["versions/v1x/a", "versions/v2/a"]
    assert await backend.storage.delete_prefix("versions/v1") == 0
    assert await backend.storage.delete_prefix("versions/none") == 0


@pytest.mark.parametrize("key", ["../escape", "/abs/path", "a/../../b", "a//b", ".hidden", ""])
async def test_unsafe_keys_are_refused(backend: Backend, key: str) -> None:
    with pytest.raises(InvalidKey):
        await backend.storage.put(key, _chunks(b"x"))
    with pytest.raises(InvalidKey):
        await _read(backend.storage, key)
    with pytest.raises(InvalidKey):
        await backend.storage.exists(key)
    with pytest.raises(InvalidKey):
        await backend.storage.delete(key)
    with pytest.raises(InvalidKey):
        await backend.storage.delete_prefix(key)
    assert backend.stored() == []


async def test_the_container_is_created_on_first_write(backend: Backend) -> None:
    assert not backend.container_exists()
    # Concurrent first writes race to create it; all of them must succeed.
    async with anyio.create_task_group() as tasks:
        for n in range(8):
            tasks.start_soon(functools.partial(backend.storage.put, f"race/{n}", _chunks(b"x")))
    assert backend.container_exists()
    assert backend.stored() == [f"race/{n}" for n in range(8)]


# -- S3 only --------------------------------------------------------------------------------


async def test_s3_large_objects_are_uploaded_in_parts(s3_endpoint: str, s3_client: Any) -> None:
    backend = _s3_backend(s3_endpoint, s3_client)
    await backend.storage.put("big", _stream(LARGE))
    assert isinstance(backend.storage, S3Storage)
    head = s3_client.head_object(Bucket=backend.storage.bucket, Key="big")
    # A multipart object's ETag is "<md5 of the part md5s>-<number of parts>".
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == LARGE


async def test_s3_unreachable_endpoint_is_service_unavailable_quickly() -> None:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = S3Storage(
        f"127.0.0.1:{port}", "k", "s", "bucket", connect_timeout=0.5, read_timeout=1, retries=1
    )
    started = time.monotonic()
    operations: list[Callable[[], Any]] = [
        lambda: storage.put("k", _chunks(b"x")),
        lambda: _read(storage, "k"),
        lambda: storage.exists("k"),
        lambda: storage.delete("k"),
        lambda: storage.delete_prefix("p"),
    ]
    for operation in operations:
        with pytest.raises(ServiceUnavailable) as caught:
            await operation()
        assert caught.value.retry_after > 0
        assert caught.value.headers["Retry-After"] == str(caught.value.retry_after)
        assert "unavailable" in caught.value.detail
        assert caught.value.__cause__ is not None
    assert time.monotonic() - started < 10


def test_s3_part_size_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Storage("127.0.0.1:9", "k", "s", "b", part_size=PART - 1)


def test_create_storage_follows_the_settings(tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "database_url": "postgresql://u@127.0.0.1/db",
        "redis_url": "redis://127.0.0.1/0",
        "internal_token": "x" * 16,
        "service_token": "y" * 16,
        "data_dir": tmp_path,
    }
    local = create_storage(CommonSettings(**common, storage_backend="local"))
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "storage").resolve()

    s3 = create_storage(
        CommonSettings(
            **common,
            storage_backend="s3",
            s3_endpoint="s3.internal:9000",
            s3_bucket="models",
            s3_access_key="ak",
            s3_secret_key="sk",
        )
    )
    assert isinstance(s3, S3Storage)
    assert (s3.endpoint, s3.bucket) == ("s3.internal:9000", "models")
    assert not (tmp_path / "storage").exists()
