"""Inference fixtures: ready models made fast (tiny weights straight into storage)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from services.models_hub.models import Model, ModelVersion
from shared.db import session_scope
from shared.storage import LocalStorage
from tests.factories import UserSession, api_key
from tests.models_hub.conftest import developer
from tests.models_hub.tiny_models import build_tiny_gpt2, build_tiny_llama


def _kind(path: Path) -> str:
    """What the hub records for such a file (services/models_hub/versions/formats.py)."""
    return {".safetensors": "safetensors", ".json": "json", ".model": "sentencepiece"}.get(
        path.suffix, "text"
    )


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    yield path.read_bytes()


async def ready_model(
    platform: Any,
    owner: UserSession,
    folder: Path,
    *,
    slug: str = "tiny",
    visibility: str = "public",
    status: str = "ready",
    default_params: dict[str, Any] | None = None,
    system_prompt: str | None = None,
) -> dict[str, Any]:
    """A model whose active version is `folder`, as validation would have left it."""
    storage = LocalStorage(platform.common["data_dir"] / "storage")
    model_id, version_id = uuid.uuid4(), uuid.uuid4()
    prefix = f"models/{model_id}/versions/{version_id}/original"
    files = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        stored = await storage.put(f"{prefix}/{path.name}", _chunks(path))
        files.append(
            {"name": path.name, "size": stored.size, "sha256": stored.sha256, "kind": _kind(path)}
        )
    async with session_scope(platform.sessionmaker) as session:
        model = Model(
            id=model_id,
            owner_id=uuid.UUID(owner.id),
            owner_username=owner.username,
            slug=slug,
            name=slug,
            visibility=visibility,
            status=status,
            default_params=default_params or {},
            system_prompt=system_prompt,
        )
        session.add(model)
        await session.flush()
        version = ModelVersion(
            id=version_id,
            model_id=model_id,
            owner_id=model.owner_id,
            number=1,
            status=status,
            format="safetensors",
            files=files,
            servable_prefix=prefix,
            servable_files=files,
        )
        session.add(version)
        await session.flush()
        if status == "ready":
            model.active_version_id = version_id
    return {"id": str(model_id), "ref": f"{owner.username}/{slug}", "version_id": str(version_id)}


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("llama") / "model")


@pytest.fixture(scope="session")
def no_template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("plain") / "model", chat_template=False)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2") / "model")


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> UserSession:
    return await developer(client, "owner")


@pytest.fixture
async def llama(platform, owner, tiny_llama_dir) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return await ready_model(platform, owner, tiny_llama_dir)


@pytest.fixture
async def owner_key(client: httpx.AsyncClient, owner: UserSession) -> str:
    return str((await api_key(client, owner, scopes=["inference"]))["key"])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def activate_new_version(platform: Any, model: dict[str, Any], folder: Path) -> str:
    """A second ready version of `model` from `folder`, made the active one; its id."""
    storage = LocalStorage(platform.common["data_dir"] / "storage")
    model_id, version_id = uuid.UUID(model["id"]), uuid.uuid4()
    prefix = f"models/{model_id}/versions/{version_id}/original"
    files = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        stored = await storage.put(f"{prefix}/{path.name}", _chunks(path))
        files.append(
            {"name": path.name, "size": stored.size, "sha256": stored.sha256, "kind": _kind(path)}
        )
    async with session_scope(platform.sessionmaker) as session:
        owner = (await session.get(Model, model_id)).owner_id  # type: ignore[union-attr]
        session.add(
            ModelVersion(
                id=version_id,
                model_id=model_id,
                owner_id=owner,
                number=2,
                status="ready",
                format="safetensors",
                files=files,
                servable_prefix=prefix,
                servable_files=files,
            )
        )
        await session.flush()
        await session.execute(
            update(Model).where(Model.id == model_id).values(active_version_id=version_id)
        )
    return str(version_id)
