"""The model registry: download from storage (sha256-checked), one load per model however many
ask at once, least-recently-used eviction under a memory budget."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import torch

from services.inference.engine import (
    EngineOptions,
    ModelFileCorrupt,
    ModelRegistry,
    ModelTooLarge,
    SamplingParams,
)
from services.inference.engine.registry import estimate_parameter_bytes, parse_device, parse_dtype
from shared import heap
from shared.storage.local import LocalStorage
from tests.models_hub.tiny_models import build_tiny_gpt2, build_tiny_llama

GREEDY = SamplingParams(temperature=0, max_tokens=8)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _upload(storage: LocalStorage, prefix: str, model_dir: Path) -> list[dict[str, Any]]:
    files = []
    for path in sorted(model_dir.iterdir()):
        if not path.is_file():
            continue
        data = path.read_bytes()
        await storage.put(f"{prefix}/{path.name}", _chunks(data))
        files.append(
            {"name": path.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    return files


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "llama": build_tiny_llama(root / "llama"),
        "llama2": build_tiny_llama(root / "llama2", seed=1),
        "gpt2": build_tiny_gpt2(root / "gpt2"),
    }


@pytest.fixture
async def stored(
    tmp_path: Path, model_dirs: dict[str, Path]
) -> tuple[LocalStorage, dict[str, list[dict[str, Any]]]]:
    storage = LocalStorage(tmp_path / "storage")
    files = {
        name: await _upload(storage, f"models/{name}/servable", d) for name, d in model_dirs.items()
    }
    return storage, files


async def _ask(engine: Any, prompt: str = "Hello, world") -> list[int]:
    ids = engine.tokenizer(prompt)["input_ids"]
    return [e.token_id async for e in engine.generate(f"r-{id(engine)}", ids, GREEDY)]


async def test_concurrent_gets_load_once(
    tmp_path: Path, stored: tuple[LocalStorage, dict[str, Any]]
) -> None:
    storage, files = stored
    registry = ModelRegistry(storage, tmp_path / "cache", memory_budget_bytes=1 << 30)
    try:
        engines = await asyncio.gather(
            *(registry.get("v1", "models/llama/servable", files["llama"]) for _ in range(6))
        )
        assert all(engine is engines[0] for engine in engines)
        assert registry.loads == 1
        assert await _ask(engines[0])
        assert await registry.get("v1", "models/llama/servable", files["llama"]) is engines[0]
        assert registry.loads == 1
        stats = registry.stats()
        assert stats["loaded_models"] == 1
        assert stats["bytes_in_use"] == engines[0].parameter_bytes > 0
        assert stats["models"]["v1"]["running"] == 0
        # the downloaded copy is the stored one
        folder = next((tmp_path / "cache").iterdir())
        for spec in files["llama"]:
            data = (folder / spec["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == spec["sha256"]
        assert not list(folder.glob(".*partial"))
    finally:
        await registry.close()


async def test_cached_files_are_not_downloaded_again(
    tmp_path: Path, stored: tuple[LocalStorage, dict[str, Any]]
) -> None:
    storage, files = stored
    first = ModelRegistry(storage, tmp_path / "cache")
    await first.download("models/gpt2/servable", [_spec(f) for f in files["gpt2"]])
    assert first.downloaded_bytes == sum(f["size"] for f in files["gpt2"])
    second = ModelRegistry(storage, tmp_path / "cache")
    await second.download("models/gpt2/servable", [_spec(f) for f in files["gpt2"]])
    assert second.downloaded_bytes == 0


def _spec(f: dict[str, Any]) -> Any:
    from services.inference.engine import ModelFile

    return ModelFile.of(f)


async def test_lru_eviction_under_a_small_budget(
    tmp_path: Path, stored: tuple[LocalStorage, dict[str, Any]], model_dirs: dict[str, Path]
) -> None:
    storage, files = stored
    one_llama = estimate_parameter_bytes(model_dirs["llama"], 4)
    gpt2 = estimate_parameter_bytes(model_dirs["gpt2"], 4)
    # Room for two llamas, not for two llamas and the gpt2.
    registry = ModelRegistry(
        storage,
        tmp_path / "cache",
        memory_budget_bytes=2 * one_llama + gpt2 // 2,
        engine_options=EngineOptions(max_batch_size=4),
    )
    try:
        a = await registry.get("a", "models/llama/servable", files["llama"])
        b = await registry.get("b", "models/llama2/servable", files["llama2"])
        assert abs(a.parameter_bytes - one_llama) < one_llama // 100  # + rotary buffers
        assert registry.loaded() == ["a", "b"]
        assert await registry.get("a", "models/llama/servable", files["llama"]) is a  # a is used
        c = await registry.get("c", "models/gpt2/servable", files["gpt2"])
        assert registry.loaded() == ["a", "c"]  # b was the least recently used
        assert b.closed
        assert not a.closed
        assert registry.evictions == 1
        assert registry.bytes_in_use <= registry.stats()["memory_budget_bytes"]
        assert await _ask(c)
        # b comes back as a new engine, evicting a (now the least recently used)
        b2 = await registry.get("b", "models/llama2/servable", files["llama2"])
        assert b2 is not b
        assert registry.loaded() == ["c", "b"]
        assert a.closed
        assert registry.loads == 4
        assert await registry.unload("c")
        assert c.closed
        assert not await registry.unload("c")
        assert registry.loaded() == ["b"]
    finally:
        await registry.close()
    assert b2.closed


async def test_a_model_over_the_budget_is_refused(
    tmp_path: Path, stored: tuple[LocalStorage, dict[str, Any]]
) -> None:
    storage, files = stored
    registry = ModelRegistry(storage, tmp_path / "cache", memory_budget_bytes=1000)
    with pytest.raises(ModelTooLarge):
        await registry.get("a", "models/llama/servable", files["llama"])
    assert registry.loaded() == []


async def test_corrupt_download_is_a_clear_error(
    tmp_path: Path, stored: tuple[LocalStorage, dict[str, Any]]
) -> None:
    storage, files = stored
    # the stored weights are damaged after registration: same size, other bytes
    key = "models/llama/servable/model.safetensors"
    damaged = bytearray((storage.root / key).read_bytes())
    damaged[-1] ^= 0xFF
    await storage.put(key, _chunks(bytes(damaged)))
    registry = ModelRegistry(storage, tmp_path / "cache")
    with pytest.raises(ModelFileCorrupt) as caught:
        await asyncio.gather(
            *(registry.get("v", "models/llama/servable", files["llama"]) for _ in range(3))
        )
    assert "model.safetensors" in caught.value.detail
    assert "sha256" in caught.value.detail
    assert caught.value.status_code == 502
    assert registry.loaded() == []
    assert registry.loads == 0
    folder = next((tmp_path / "cache").iterdir())
    assert not (folder / "model.safetensors").exists()
    assert not list(folder.glob(".*partial"))

    # a truncated object fails on its size
    await storage.put(key, _chunks(bytes(damaged[:100])))
    with pytest.raises(ModelFileCorrupt, match="100 bytes"):
        await registry.get("v", "models/llama/servable", files["llama"])


def test_settings_parsing() -> None:

    assert parse_device("cpu") == "cpu"
    assert parse_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="device"):
        parse_device("tpu")
    assert parse_dtype(None, "cpu") == torch.float32
    assert parse_dtype(None, "cuda") == torch.bfloat16
    assert parse_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        parse_dtype("int3", "cpu")


async def test_an_unloaded_model_is_freed_though_the_heap_was_frozen_after_its_load(
    tmp_path: Path, stored: tuple[LocalStorage, dict[str, Any]]
) -> None:
    """The registry freezes the heap after a load (shared/heap.py), so that collections skip
    the model; unloading it must still give its memory back."""
    storage, files = stored
    registry = ModelRegistry(storage, tmp_path / "cache", memory_budget_bytes=1 << 30)
    try:
        engine = await registry.get("a", "models/llama/servable", files["llama"])
        assert gc.get_freeze_count() > 0
        model = engine._scheduler._backend._model
        model.loop_back = [model]  # a cycle, as some architectures' modules make
        weights = weakref.ref(next(model.parameters()))
        del engine, model
        assert await registry.unload("a")
        assert weights() is None
    finally:
        await registry.close()
        heap.thaw()
