"""The model runtime, apart from HTTP: continuous batching over transformers models.

    registry = ModelRegistry(storage, cache_dir, device="cpu", memory_budget_bytes=8 << 30)
    engine = await registry.get(version_id, storage_prefix, files)
    async for event in engine.generate(request_id, prompt_ids, SamplingParams(...)):
        ...

Importing this package does not import torch; the engine modules load it when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.inference.engine.arrivals import Arrival, Arrivals
from services.inference.engine.errors import (
    DuplicateRequest,
    EngineClosed,
    GenerationFailed,
    InvalidPrompt,
    InvalidSamplingParams,
    ModelFileCorrupt,
    ModelTooLarge,
    PromptTooLong,
    QueueFull,
)
from services.inference.engine.params import (
    EngineOptions,
    FinishReason,
    SamplingParams,
    TokenEvent,
)

if TYPE_CHECKING:
    from services.inference.engine.engine import Engine, GenerationStream
    from services.inference.engine.registry import ModelFile, ModelRegistry

__all__ = [
    "Arrival",
    "Arrivals",
    "DuplicateRequest",
    "Engine",
    "EngineClosed",
    "EngineOptions",
    "FinishReason",
    "GenerationFailed",
    "GenerationStream",
    "InvalidPrompt",
    "InvalidSamplingParams",
    "ModelFile",
    "ModelFileCorrupt",
    "ModelRegistry",
    "ModelTooLarge",
    "PromptTooLong",
    "QueueFull",
    "SamplingParams",
    "TokenEvent",
]

_LAZY = {
    "Engine": "services.inference.engine.engine",
    "GenerationStream": "services.inference.engine.engine",
    "ModelFile": "services.inference.engine.registry",
    "ModelRegistry": "services.inference.engine.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
