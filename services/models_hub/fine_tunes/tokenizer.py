"""The tokenizer of a model version, for checking a dataset's token counts at upload time.

Only the small files are fetched from storage (config, tokenizer and chat template; never the
weights) into a per-version folder under the data dir, and loaded with transformers
(`trust_remote_code=False`, local files only) in a worker thread. A few stay in memory: checks
against the same model in a row load it once.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import anyio

from services.models_hub.models import ModelVersion
from shared.storage import Storage

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
_KEEP = 4
_cache: OrderedDict[uuid.UUID, Any] = OrderedDict()
_lock = asyncio.Lock()


def _is_small_file(name: str) -> bool:
    return "/" not in name and not name.endswith(_WEIGHT_SUFFIXES)


def _load(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)


async def _fetch(storage: Storage, version: ModelVersion, folder: Path) -> None:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for entry in version.servable_files:
        if not _is_small_file(entry["name"]):
            continue
        async with await anyio.open_file(partial / entry["name"], "wb") as out:
            async for chunk in storage.open(f"{version.servable_prefix}/{entry['name']}"):
                await out.write(chunk)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


async def version_tokenizer(storage: Storage, version: ModelVersion, cache_dir: Path) -> Any:
    """The tokenizer `version` is served with (its servable files)."""
    async with _lock:
        if version.id in _cache:
            _cache.move_to_end(version.id)
            return _cache[version.id]
        folder = cache_dir / str(version.id)
        if not folder.is_dir():
            await _fetch(storage, version, folder)
        tokenizer = await anyio.to_thread.run_sync(_load, folder)
        _cache[version.id] = tokenizer
        while len(_cache) > _KEEP:
            _cache.popitem(last=False)
        return tokenizer
