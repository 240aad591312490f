"""Archive uploads are held to an expansion ratio: a bomb is refused before it costs anything."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as save_safetensors

from tests.models_hub.conftest import as_file, create_model, developer, upload

CONFIG = json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}).encode()
TOKENIZER = json.dumps({"version": "1.0", "model": {"type": "BPE"}}).encode()
BOMB_BYTES = 64 << 20  # 64 MiB of zeros: deflates to about 64 KiB


def stored_files(platform) -> list[str]:  # type: ignore[no-untyped-def]
    root = platform.common["data_dir"] / "storage"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def spooled_files(platform) -> list[Path]:  # type: ignore[no-untyped-def]
    """Whatever the hub left in its temporary directory (archives are spooled there)."""
    return [p for p in (platform.common["data_dir"] / "tmp").rglob("*") if p.is_file()]


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", CONFIG)
        archive.writestr("tokenizer.json", TOKENIZER)
        with archive.open("model.safetensors", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(BOMB_BYTES >> 20):
                member.write(chunk)
    return buffer.getvalue()


def tar_gz(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in members:
            archive.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), compresslevel=6)


def member(name: str, content: bytes, **pax: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.pax_headers = dict(pax)
    return info, content


@pytest.fixture
async def owner_and_model(client):  # type: ignore[no-untyped-def]
    dev = await developer(client)
    model = await create_model(client, dev)
    return dev, model


async def test_zip_bomb_is_refused_from_its_central_directory(client, platform, owner_and_model):
    dev, model = owner_and_model
    bomb = zip_bomb()
    assert len(bomb) < 1 << 20

    response = await upload(client, dev, model["id"], [as_file("model.zip", bomb)])

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "archive_expansion_refused"
    assert "declares" in body["detail"]
    assert "Upload the model's files themselves" in body["detail"]
    assert stored_files(platform) == []
    assert spooled_files(platform) == []
    assert (await client.get(f"/api/v1/models/{model['id']}/versions")).json() == []


@pytest.mark.parametrize(
    "name",
    ["model.safetensors", ".padding", "__MACOSX/model.safetensors"],
    ids=["weights", "hidden-member", "skipped-folder"],
)
async def test_tar_gz_bomb_is_refused_at_its_header(client, platform, owner_and_model, name):
    # Members the hub skips count too: tarfile decompresses them to reach the next header.
    dev, model = owner_and_model
    bomb = tar_gz(
        member("config.json", CONFIG),
        member("tokenizer.json", TOKENIZER),
        member(name, bytes(BOMB_BYTES)),
    )
    assert len(bomb) < 1 << 20

    response = await upload(client, dev, model["id"], [as_file("model.tar.gz", bomb)])

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "archive_expansion_refused"
    assert "declares" in response.json()["detail"]
    assert stored_files(platform) == []
    assert spooled_files(platform) == []


async def test_bomb_in_a_tar_header_is_refused_while_unpacking(client, platform, owner_and_model):
    # A pax header is read whole by tarfile before any member is seen: only the running count
    # of unpacked against compressed bytes can stop it.
    dev, model = owner_and_model
    bomb = tar_gz(member("config.json", CONFIG, comment="x" * BOMB_BYTES))
    assert len(bomb) < 1 << 20

    response = await upload(client, dev, model["id"], [as_file("model.tar.gz", bomb)])

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "archive_expansion_refused"
    assert "unpacks" in response.json()["detail"]
    assert stored_files(platform) == []
    assert spooled_files(platform) == []


def genuine_model(weight_bytes: int) -> dict[str, bytes]:
    weights = np.random.default_rng(0).standard_normal(weight_bytes // 4).astype(np.float32)
    return {
        "config.json": CONFIG,
        "tokenizer.json": TOKENIZER,
        "model.safetensors": save_safetensors({"w": weights}),
    }


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
async def test_genuine_model_archive_past_the_grace_still_uploads(
    client, platform, owner_and_model, kind
):
    # 24 MiB of float32 weights: past the 16 MiB that unpack unchecked, as real models are.
    dev, model = owner_and_model
    files = genuine_model(24 << 20)
    if kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in files.items():
                archive.writestr(f"my-model/{name}", content)
        data = buffer.getvalue()
    else:
        data = tar_gz(*(member(f"my-model/{name}", content) for name, content in files.items()))

    response = await upload(client, dev, model["id"], [as_file(f"model.{kind}", data)])

    assert response.status_code == 202, response.text
    sizes = {f["name"]: f["size"] for f in response.json()["files"]}
    assert sizes == {name: len(content) for name, content in files.items()}
    assert len(stored_files(platform)) == 3
    assert spooled_files(platform) == []


async def test_tiny_model_folder_archive_uploads(client, platform, owner_and_model, tmp_path):
    from tests.models_hub.tiny_models import build_tiny_llama

    dev, model = owner_and_model
    folder = build_tiny_llama(tmp_path / "tiny")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname="tiny")

    response = await upload(client, dev, model["id"], [as_file("tiny.tar.gz", buffer.getvalue())])

    assert response.status_code == 202, response.text
    names = sorted(f["name"] for f in response.json()["files"])
    assert names == sorted(p.name for p in folder.iterdir() if p.is_file())


async def test_the_ratio_is_a_setting(client, platform, owner_and_model, hub_limits):
    dev, model = owner_and_model
    files = genuine_model(24 << 20)
    data = tar_gz(*(member(name, content) for name, content in files.items()))
    hub_limits(max_expansion_ratio=1)  # gzip still shaves a few bytes off random floats

    response = await upload(client, dev, model["id"], [as_file("model.tar.gz", data)])

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "archive_expansion_refused"
    assert "more than 1 times" in response.json()["detail"]
    assert stored_files(platform) == []
