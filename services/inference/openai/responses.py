"""OpenAI wire shapes: chunks for streams, whole responses otherwise."""

from __future__ import annotations

import json
from typing import Any

from services.inference.openai.service import Generation

DONE = b"data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def usage(generation: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    }


def chunk(
    generation: Generation,
    *,
    text: str | None = None,
    role: bool = False,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    base = {"id": generation.id, "created": generation.created, "model": generation.model.ref}
    if generation.endpoint == "chat.completions":
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return {**base, "object": "chat.completion.chunk", "choices": [choice]}
    choice = {"index": 0, "text": text or "", "finish_reason": finish_reason, "logprobs": None}
    return {**base, "object": "text_completion", "choices": [choice]}


def usage_chunk(generation: Generation) -> dict[str, Any]:
    kind = (
        "chat.completion.chunk" if generation.endpoint == "chat.completions" else "text_completion"
    )
    return {
        "id": generation.id,
        "object": kind,
        "created": generation.created,
        "model": generation.model.ref,
        "choices": [],
        "usage": usage(generation),
    }


def complete(generation: Generation, text: str) -> dict[str, Any]:
    base = {
        "id": generation.id,
        "created": generation.created,
        "model": generation.model.ref,
        "usage": usage(generation),
    }
    reason = generation.finish_reason or "stop"
    if generation.endpoint == "chat.completions":
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": reason, "logprobs": None}
        return {**base, "object": "chat.completion", "choices": [choice]}
    choice = {"index": 0, "text": text, "finish_reason": reason, "logprobs": None}
    return {**base, "object": "text_completion", "choices": [choice]}


def error_event(code: str, detail: str) -> dict[str, Any]:
    return {"error": {"message": detail, "type": "server_error", "code": code}}
