"""The engine's errors: each is a shared `LLMNetError`, so the HTTP layer renders it as is."""

from __future__ import annotations

from shared.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    LLMNetError,
    ServiceUnavailable,
    TooManyRequests,
)

__all__ = [
    "DuplicateRequest",
    "EngineClosed",
    "GenerationFailed",
    "InvalidPrompt",
    "InvalidSamplingParams",
    "ModelFileCorrupt",
    "ModelTooLarge",
    "PromptTooLong",
    "QueueFull",
]


class QueueFull(TooManyRequests):
    """The model's waiting queue is full; retry after `retry_after` seconds."""

    code = "queue_full"


class PromptTooLong(BadRequest):
    """prompt tokens + max_tokens do not fit the model's context."""

    code = "prompt_too_long"


class InvalidPrompt(BadRequest):
    """The messages cannot be made into a prompt for this model (the detail says why)."""

    code = "invalid_prompt"


class InvalidSamplingParams(BadRequest):
    code = "invalid_sampling_params"


class DuplicateRequest(Conflict):
    """A request with this id is already running on the engine."""

    code = "duplicate_request_id"


class EngineClosed(ServiceUnavailable):
    """The engine was closed (unloaded or evicted); asking the registry again loads it anew."""

    code = "engine_closed"


class GenerationFailed(LLMNetError):
    """The model failed while generating (the engine itself keeps serving)."""

    code = "generation_failed"


class ModelFileCorrupt(BadGateway):
    """A model file read from storage does not have the size or sha256 it was registered with."""

    code = "model_file_corrupt"


class ModelTooLarge(ServiceUnavailable):
    """The model alone needs more memory than this server's model budget."""

    code = "model_too_large"
