"""Uploads: streamed to storage, recognised by content, refused with a reason, capped."""

from __future__ import annotations

import io
import json
import pickle
import struct
import tarfile

import numpy as np
import pytest
from safetensors.numpy import save as save_safetensors

from tests.factories import user_session
from tests.models_hub.conftest import (
    archive_bytes,
    as_file,
    checksums_field,
    create_model,
    developer,
    upload,
)

CONFIG = json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}).encode()
TOKENIZER = json.dumps({"version": "1.0", "model": {"type": "BPE"}}).encode()
WEIGHTS = save_safetensors({"w": np.arange(12, dtype=np.float32).reshape(3, 4)})


def hf_files(**overrides: bytes) -> list:
    files = {"config.json": CONFIG, "model.safetensors": WEIGHTS, "tokenizer.json": TOKENIZER}
    files.update(overrides)
    return [as_file(name, content) for name, content in files.items() if content is not None]


def stored_files(platform) -> list[str]:
    root = platform.common["data_dir"] / "storage"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
async def owner_and_model(client):
    dev = await developer(client)
    model = await create_model(client, dev)
    return dev, model


async def test_folder_upload_is_stored_with_checksums(client, platform, owner_and_model):
    dev, model = owner_and_model
    files = hf_files()
    response = await upload(client, dev, model["id"], files, data=checksums_field(files))
    assert response.status_code == 202, response.text
    version = response.json()
    assert version["number"] == 1
    assert version["status"] == "validating"
    assert version["format"] == "safetensors"
    by_name = {f["name"]: f for f in version["files"]}
    assert set(by_name) == {"config.json", "model.safetensors", "tokenizer.json"}
    assert by_name["model.safetensors"]["kind"] == "safetensors"
    assert by_name["model.safetensors"]["size"] == len(WEIGHTS)
    assert version["total_size"] == len(CONFIG) + len(WEIGHTS) + len(TOKENIZER)
    assert len(stored_files(platform)) == 3

    model_now = (await client.get(f"/api/v1/models/{model['id']}")).json()
    assert model_now["status"] == "validating"
    download = await client.get(
        f"/api/v1/models/{model['id']}/versions/{version['id']}/files/model.safetensors"
    )
    assert download.status_code == 200
    assert download.content == WEIGHTS


async def test_checksum_mismatch_leaves_nothing_behind(client, platform, owner_and_model):
    dev, model = owner_and_model
    files = hf_files()
    data = {"checksums": json.dumps({"model.safetensors": "0" * 64})}
    response = await upload(client, dev, model["id"], files, data=data)
    assert response.status_code == 422
    assert response.json()["code"] == "checksum_mismatch"
    assert stored_files(platform) == []
    versions = (await client.get(f"/api/v1/models/{model['id']}/versions")).json()
    assert versions == []


@pytest.mark.parametrize(
    ("files", "code", "phrase"),
    [
        ([as_file("pytorch_model.bin", b"anything")], "pickle_refused", "safetensors"),
        (
            [as_file("model.safetensors", pickle.dumps({"w": 1}, protocol=4))],
            "pickle_refused",
            "safetensors",
        ),
        ([as_file("modeling_evil.py", b"import os")], "code_refused", "custom code"),
        (
            hf_files(
                **{
                    "config.json": json.dumps(
                        {"model_type": "llama", "auto_map": {"AutoModel": "x.Y"}}
                    ).encode()
                }
            ),
            "code_refused",
            "auto_map",
        ),
        (hf_files(**{"model.safetensors": WEIGHTS[:-7]}), "invalid_model_file", "truncated"),
        (hf_files(**{"config.json": b"{not json"}), "invalid_model_file", "not valid JSON"),
        (hf_files(**{"tokenizer.json": None}), "incomplete_model", "tokenizer"),
        ([as_file("notes.docx", b"\x00\x01binary")], "file_refused", "not a file type"),
        ([as_file("../escape.json", b"{}")], "file_refused", "plain file names"),
    ],
    ids=[
        "pickle-by-name",
        "pickle-by-content",
        "python",
        "auto_map",
        "truncated",
        "bad-config",
        "no-tokenizer",
        "unknown",
        "traversal-name",
    ],
)
async def test_unacceptable_uploads_are_422_with_a_reason(
    client, platform, owner_and_model, files, code, phrase
):
    dev, model = owner_and_model
    response = await upload(client, dev, model["id"], files)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == code
    assert phrase in body["detail"]
    assert stored_files(platform) == []


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
async def test_archive_of_a_model_folder(client, platform, owner_and_model, kind):
    dev, model = owner_and_model
    archive = archive_bytes(
        kind,
        {
            "my-model/config.json": CONFIG,
            "my-model/model.safetensors": WEIGHTS,
            "my-model/tokenizer.json": TOKENIZER,
            "my-model/.gitattributes": b"*.safetensors filter=lfs",
        },
    )
    response = await upload(client, dev, model["id"], [as_file(f"model.{kind}", archive)])
    assert response.status_code == 202, response.text
    names = sorted(f["name"] for f in response.json()["files"])
    assert names == ["config.json", "model.safetensors", "tokenizer.json"]
    assert len(stored_files(platform)) == 3


def _tar_with(member: tarfile.TarInfo, content: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("config.json")
        info.size = len(CONFIG)
        archive.addfile(info, io.BytesIO(CONFIG))
        archive.addfile(member, io.BytesIO(content) if content else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 2) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info


@pytest.mark.parametrize(
    ("archive", "phrase"),
    [
        (_tar_with(_member("../../evil.json"), b"{}"), "unsafe path"),
        (_tar_with(_member("/etc/cron.d/evil.json"), b"{}"), "unsafe path"),
        (_tar_with(_member("tokenizer.json", tarfile.SYMTYPE)), "link or device"),
        (_tar_with(_member("dev.json", tarfile.CHRTYPE)), "link or device"),
        (
            archive_bytes("zip", {"inner.zip": archive_bytes("zip", {"config.json": CONFIG})}),
            "archives inside archives",
        ),
        (b"\x1f\x8b" + b"not really gzip" * 40, "cannot be read"),
    ],
    ids=["dotdot", "absolute", "symlink", "device", "nested", "corrupt"],
)
async def test_dangerous_archives_are_refused(client, platform, owner_and_model, archive, phrase):
    dev, model = owner_and_model
    response = await upload(client, dev, model["id"], [as_file("model.tar", archive)])
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "archive_refused"
    assert phrase in response.json()["detail"]
    assert stored_files(platform) == []


async def test_archive_caps_on_members_and_unpacked_bytes(
    client, platform, owner_and_model, hub_limits
):
    dev, model = owner_and_model
    hub_limits(max_archive_members=3)
    many = archive_bytes("tar", {f"f{i}.json": b"{}" for i in range(5)})
    response = await upload(client, dev, model["id"], [as_file("m.tar", many)])
    assert response.status_code == 422
    assert "more than 3 members" in response.json()["detail"]

    hub_limits(max_extracted_bytes=4096)
    # A small compressed archive that unpacks past the cap (a zip bomb in miniature).
    bomb = archive_bytes(
        "tar.gz",
        {
            "config.json": CONFIG,
            "model.safetensors": save_safetensors({"w": np.zeros(8192, dtype=np.float32)}),
        },
    )
    assert len(bomb) < 4096
    response = await upload(client, dev, model["id"], [as_file("m.tar.gz", bomb)])
    assert response.status_code == 422
    assert "unpacks to more than" in response.json()["detail"]
    assert stored_files(platform) == []


async def test_upload_over_the_cap_is_413_and_leaves_nothing(
    client, platform, owner_and_model, hub_limits
):
    dev, model = owner_and_model
    hub_limits(max_upload_bytes=len(WEIGHTS) + 10)
    response = await upload(client, dev, model["id"], hf_files())
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert stored_files(platform) == []
    assert (await client.get(f"/api/v1/models/{model['id']}/versions")).json() == []


async def test_single_gguf_upload_is_accepted_for_conversion(client, owner_and_model):
    dev, model = owner_and_model
    gguf = b"GGUF" + struct.pack("<I", 3) + b"\x00" * 64
    response = await upload(
        client,
        dev,
        model["id"],
        [as_file("tiny.gguf", gguf)],
        data={"sha256": __import__("hashlib").sha256(gguf).hexdigest()},
    )
    assert response.status_code == 202, response.text
    assert response.json()["format"] == "gguf"


async def test_who_may_upload_and_daily_cap(client, owner_and_model, hub_limits):
    dev, model = owner_and_model
    stranger = await user_session(client)
    refused = await upload(client, stranger, model["id"], hf_files())
    assert refused.status_code == 403
    assert (
        await client.post(f"/api/v1/models/{model['id']}/versions", files=hf_files())
    ).status_code == 401

    hub_limits(max_uploads_per_day=1)
    assert (await upload(client, dev, model["id"], hf_files())).status_code == 202
    capped = await upload(client, dev, model["id"], hf_files())
    assert capped.status_code == 429
    assert capped.json()["code"] == "upload_limit"


async def test_malformed_upload_requests(client, owner_and_model):
    dev, model = owner_and_model
    path = f"/api/v1/models/{model['id']}/versions"
    not_multipart = await client.post(path, json={"files": []}, headers=dev.headers)
    assert not_multipart.status_code == 422
    assert not_multipart.json()["code"] == "malformed_multipart"
    empty = await client.post(path, data={"note": "hi"}, files=[], headers=dev.headers)
    assert empty.status_code == 422
    cut = await client.post(
        path,
        content=b'--B\r\nContent-Disposition: form-data; name="files"; filename="c.json"\r\n\r\n{',
        headers={**dev.headers, "content-type": "multipart/form-data; boundary=B"},
    )
    assert cut.status_code == 422


async def test_version_lifecycle_rules(client, owner_and_model):
    dev, model = owner_and_model
    version = (await upload(client, dev, model["id"], hf_files())).json()
    base = f"/api/v1/models/{model['id']}/versions/{version['id']}"
    not_ready = await client.post(f"{base}/activate", headers=dev.headers)
    assert not_ready.status_code == 409
    assert "only ready versions" in not_ready.json()["detail"]
    assert (await client.delete(base, headers=dev.headers)).status_code == 204
    assert (await client.get(base)).status_code == 404
