"""Upload sessions on the S3 backend (moto's server on loopback: parts are real S3 multipart
uploads), parts sent four at a time; a transfer cut mid-part resumes with only the missing
part; a version made by a session validates to `ready`."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from sqlalchemy import update

from services.models_hub.models import UploadSession
from services.models_hub.worker import sweep
from shared.db import session_scope, utcnow
from shared.storage import StoredPart
from shared.storage.s3 import S3Storage
from tests.models_hub.conftest import create_model, developer
from tests.models_hub.tiny_models import build_tiny_llama
from tests.models_hub.versions.upload_sessions import (
    PART,
    base,
    complete,
    create_session,
    hf_model,
    parts_of,
    put_part,
    send_all,
    sha256,
)
from tests.shared.s3_server import ACCESS_KEY, REGION, SECRET_KEY, moto_s3_server

pytestmark = pytest.mark.timeout(300)


@dataclasses.dataclass
class S3:
    storage: S3Storage
    client: Any
    bucket: str

    def objects(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def pending_uploads(self) -> list[str]:
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return sorted(u["Key"] for u in uploads)


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(platform, s3_endpoint):
    """The model hub's storage on a real S3-compatible server, a fresh bucket per test."""
    bucket = f"hub-{uuid.uuid4().hex[:12]}"
    storage = S3Storage(s3_endpoint, ACCESS_KEY, SECRET_KEY, bucket, region=REGION)
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{s3_endpoint}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}),
    )
    app = platform.apps["models_hub"]
    local = app.state.hub
    app.state.hub = dataclasses.replace(local, storage=storage)
    try:
        yield S3(storage, client, bucket)
    finally:
        app.state.hub = local


@pytest.fixture
async def owner_and_model(client):
    dev = await developer(client)
    model = await create_model(client, dev)
    return dev, model


async def test_parts_in_parallel_become_an_s3_multipart_object(client, s3, owner_and_model):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    # One multipart upload per file, started with the session, where the version's file goes.
    assert len(s3.pending_uploads()) == 3
    parts = [
        (name, offset, chunk)
        for name, content in files.items()
        for offset, chunk in parts_of(content)
    ]
    parts.reverse()  # the last part first
    parts.append(parts[0])  # and one part twice
    gate = asyncio.Semaphore(4)

    async def send(name: str, offset: int, chunk: bytes) -> httpx.Response:
        async with gate:
            return await put_part(client, dev, model["id"], session["id"], name, offset, chunk)

    answers = await asyncio.gather(*(send(*part) for part in parts))
    assert [a.status_code for a in answers] == [200] * len(parts)
    status = (await client.get(f"{base(model['id'])}/{session['id']}", headers=dev.headers)).json()
    assert all(f["missing_offsets"] == [] for f in status["files"])
    assert status["received_bytes"] == status["total_bytes"]

    done = await complete(client, dev, model["id"], session["id"])
    assert done.status_code == 202, done.text
    version = done.json()
    assert {f["name"]: f["sha256"] for f in version["files"]} == {
        n: sha256(c) for n, c in files.items()
    }
    assert s3.pending_uploads() == []
    prefix = f"models/{model['id']}/versions/{version['id']}/original"
    assert s3.objects() == sorted(f"{prefix}/{name}" for name in files)
    download = await client.get(
        f"/api/v1/models/{model['id']}/versions/{version['id']}/files/model.safetensors"
    )
    assert download.content == files["model.safetensors"]


async def test_checksum_mismatch_on_s3_keeps_nothing(client, s3, owner_and_model):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    corrupted = {**files, "tokenizer.json": files["tokenizer.json"].replace(b"BPE", b"XYZ")}
    await send_all(client, dev, model["id"], session["id"], corrupted)
    response = await complete(client, dev, model["id"], session["id"])
    assert response.status_code == 422
    assert response.json()["code"] == "checksum_mismatch"
    assert s3.objects() == []
    assert s3.pending_uploads() == []


async def test_abort_and_expiry_remove_the_multipart_uploads(client, platform, s3, owner_and_model):
    dev, model = owner_and_model
    files = hf_model()
    aborted = (await create_session(client, dev, model["id"], files)).json()
    expired = (await create_session(client, dev, model["id"], files)).json()
    for session in (aborted, expired):
        first = parts_of(files["model.safetensors"])[0]
        sent = await put_part(client, dev, model["id"], session["id"], "model.safetensors", *first)
        assert sent.status_code == 200
    assert len(s3.pending_uploads()) == 6

    url = f"{base(model['id'])}/{aborted['id']}"
    assert (await client.delete(url, headers=dev.headers)).status_code == 204
    assert len(s3.pending_uploads()) == 3

    async with session_scope(platform.sessionmaker) as db:
        await db.execute(
            update(UploadSession)
            .where(UploadSession.id == expired["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    hub = platform.apps["models_hub"].state.hub
    result = await sweep({"hub": hub, "sessionmaker": platform.sessionmaker})
    assert result["upload_sessions_expired"] == 1
    assert s3.pending_uploads() == []
    assert s3.objects() == []


class CountingStorage:
    """The hub's storage, counting the bytes of parts as they arrive at the model hub."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.received = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

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
        async def counted() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                self.received += len(chunk)
                yield chunk

        result: StoredPart = await self._inner.put_part(
            key, upload_id, number, counted(), size=size, offset=offset
        )
        return result


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_a_transfer_cut_mid_part_resumes_with_only_the_missing_part(
    client, platform, owner_and_model, backend, request
):
    dev, model = owner_and_model
    app = platform.apps["models_hub"]
    hub = app.state.hub
    if backend == "s3":
        hub = dataclasses.replace(hub, storage=request.getfixturevalue("s3").storage)
    counting = CountingStorage(hub.storage)
    original = app.state.hub
    app.state.hub = dataclasses.replace(hub, storage=counting)
    try:
        files = hf_model()
        session = (await create_session(client, dev, model["id"], files)).json()
        await send_all(
            client,
            dev,
            model["id"],
            session["id"],
            {k: v for k, v in files.items() if k != "model.safetensors"},
        )
        parts = parts_of(files["model.safetensors"])
        await put_part(client, dev, model["id"], session["id"], "model.safetensors", *parts[0])
        before_cut = counting.received

        # The second part: the client's connection drops after 3 MiB of its 5 (through the
        # gateway, as a real client's would).
        class Cut(Exception):
            pass

        async def breaks_off() -> AsyncIterator[bytes]:
            chunk = parts[1][1]
            for start in range(0, 3 * (1 << 20), 1 << 20):
                yield chunk[start : start + (1 << 20)]
                await asyncio.sleep(0.05)
            raise Cut

        with pytest.raises((Cut, httpx.HTTPError)):
            await client.put(
                f"{base(model['id'])}/{session['id']}/files/model.safetensors",
                params={"offset": PART},
                content=breaks_off(),
                headers={**dev.headers, "Content-Length": str(PART)},
            )
        # Let the server notice the cut: its count stops growing.
        seen = -1
        for _ in range(50):
            if counting.received == seen and seen > before_cut:
                break
            seen = counting.received
            await asyncio.sleep(0.1)
        # The part that broke off is not recorded.
        status = (
            await client.get(f"{base(model['id'])}/{session['id']}", headers=dev.headers)
        ).json()
        weights_file = {f["name"]: f for f in status["files"]}["model.safetensors"]
        assert weights_file["missing_offsets"] == [PART, 2 * PART]
        cut_bytes = counting.received - before_cut
        assert 0 < cut_bytes < PART

        # Resume: only what GET says is missing is sent again.
        resumed_from = counting.received
        for offset in weights_file["missing_offsets"]:
            chunk = files["model.safetensors"][offset : offset + PART]
            sent = await put_part(
                client, dev, model["id"], session["id"], "model.safetensors", offset, chunk
            )
            assert sent.status_code == 200, sent.text
        resent = counting.received - resumed_from
        assert resent == len(parts[1][1]) + len(parts[2][1])
        # The total through the session: every byte once, plus the part that broke off.
        total = sum(len(c) for c in files.values())
        assert counting.received == total + cut_bytes
        done = await complete(client, dev, model["id"], session["id"])
        assert done.status_code == 202, done.text
    finally:
        app.state.hub = original


async def test_a_version_made_by_a_session_validates_to_ready(
    client, owner_and_model, run_jobs, tmp_path
):
    # The local backend: the worker that validates builds its storage from the settings.
    dev, model = owner_and_model
    folder = build_tiny_llama(tmp_path / "llama")
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    session = (await create_session(client, dev, model["id"], files)).json()
    await send_all(client, dev, model["id"], session["id"], files)
    done = await complete(client, dev, model["id"], session["id"])
    assert done.status_code == 202, done.text
    assert await run_jobs() >= 1
    version = (
        await client.get(f"/api/v1/models/{model['id']}/versions/{done.json()['id']}")
    ).json()
    assert version["status"] == "ready", version["error"]
    assert version["is_active"] is True


async def _send_a_copy_that_breaks_off(client, dev, model_id, session_id, offset, data) -> None:
    """A copy of the part at `offset` whose connection drops after 3 MiB."""

    class Cut(Exception):
        pass

    async def breaks_off() -> AsyncIterator[bytes]:
        for start in range(0, 3 * (1 << 20), 1 << 20):
            yield data[start : start + (1 << 20)]
            await asyncio.sleep(0.05)
        raise Cut

    with pytest.raises((Cut, httpx.HTTPError)):
        await client.put(
            f"{base(model_id)}/{session_id}/files/model.safetensors",
            params={"offset": offset},
            content=breaks_off(),
            headers={**dev.headers, "Content-Length": str(len(data))},
        )


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_a_second_copy_that_breaks_off_leaves_its_part_missing_until_sent_whole(
    client, platform, owner_and_model, backend, request
):
    dev, model = owner_and_model
    app = platform.apps["models_hub"]
    original = app.state.hub
    if backend == "s3":
        app.state.hub = dataclasses.replace(original, storage=request.getfixturevalue("s3").storage)
    try:
        files = hf_model()
        session = (await create_session(client, dev, model["id"], files)).json()
        await send_all(client, dev, model["id"], session["id"], files)
        # The local backend writes a new copy over the old one: once it breaks off, the part
        # is missing (on both backends, so clients see one behaviour) and completing says so.
        second = parts_of(files["model.safetensors"])[1]
        await _send_a_copy_that_breaks_off(client, dev, model["id"], session["id"], *second)
        url = f"{base(model['id'])}/{session['id']}"
        for _ in range(50):  # until the server has noticed the cut
            status = (await client.get(url, headers=dev.headers)).json()
            weights_file = {f["name"]: f for f in status["files"]}["model.safetensors"]
            if weights_file["missing_offsets"]:
                break
            await asyncio.sleep(0.1)
        assert weights_file["missing_offsets"] == [PART]
        refused = await complete(client, dev, model["id"], session["id"])
        assert refused.status_code == 409
        assert refused.json()["code"] == "upload_incomplete"
        assert str(PART) in refused.json()["detail"]

        sent = await put_part(client, dev, model["id"], session["id"], "model.safetensors", *second)
        assert sent.status_code == 200, sent.text
        done = await complete(client, dev, model["id"], session["id"])
        assert done.status_code == 202, done.text
        by_name = {f["name"]: f["sha256"] for f in done.json()["files"]}
        assert by_name["model.safetensors"] == sha256(files["model.safetensors"])
    finally:
        app.state.hub = original


async def test_two_copies_of_one_part_at_once_are_not_mixed(client, owner_and_model):
    # The local backend writes a part in place: a second copy while one is arriving is
    # refused (409 with Retry-After) rather than interleaved with it.
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    second = parts_of(files["model.safetensors"])[1]
    halfway = asyncio.Event()
    go_on = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        data = second[1]
        yield data[: 1 << 20]
        halfway.set()
        await go_on.wait()
        yield data[1 << 20 :]

    first_copy = asyncio.create_task(
        client.put(
            f"{base(model['id'])}/{session['id']}/files/model.safetensors",
            params={"offset": PART},
            content=slow(),
            headers={**dev.headers, "Content-Length": str(len(second[1]))},
        )
    )
    await halfway.wait()
    await asyncio.sleep(0.3)  # the first MiB reaches the model hub
    other = bytes(b ^ 0xFF for b in second[1])
    refused = await put_part(
        client, dev, model["id"], session["id"], "model.safetensors", PART, other
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "part_in_progress"
    assert refused.headers["retry-after"] == "2"
    go_on.set()
    assert (await first_copy).status_code == 200
    await send_all(client, dev, model["id"], session["id"], files)
    done = await complete(client, dev, model["id"], session["id"])
    assert done.status_code == 202, done.text
    by_name = {f["name"]: f["sha256"] for f in done.json()["files"]}
    assert by_name["model.safetensors"] == sha256(files["model.safetensors"])
