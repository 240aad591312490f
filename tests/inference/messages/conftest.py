"""Messages fixtures: conversations on the tiny llama, SSE parsing, the prompts the engine got."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.inference.deps import InferenceContext
from services.inference.engine.engine import Engine
from shared.model_loading import load_causal_lm
from tests.factories import UserSession


@dataclass
class Event:
    id: str | None
    event: str | None
    data: Any


def parse_events(lines: list[str]) -> list[Event]:
    """Server-sent events from the lines of a stream (comments skipped)."""
    events: list[Event] = []
    current: dict[str, str] = {}
    for line in [*lines, ""]:
        if not line:
            if "data" in current:
                events.append(
                    Event(current.get("id"), current.get("event"), json.loads(current["data"]))
                )
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value
    return events


def inference(platform: Any) -> InferenceContext:
    ctx: InferenceContext = platform.apps["inference"].state.inference
    return ctx


async def new_conversation(
    client: httpx.AsyncClient, user: UserSession, model: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    fields.setdefault("parameters", {"temperature": 0, "max_tokens": 6})
    response = await client.post(
        "/api/v1/conversations", headers=user.headers, json={"model": model["ref"], **fields}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def send(
    client: httpx.AsyncClient, user: UserSession, conversation_id: str, **body: Any
) -> httpx.Response:
    body.setdefault("stream", False)
    return await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", headers=user.headers, json=body
    )


async def stream_events(
    client: httpx.AsyncClient, method: str, url: str, user: UserSession, **kwargs: Any
) -> list[Event]:
    headers = {**user.headers, "Accept": "text/event-stream", **kwargs.pop("headers", {})}
    async with client.stream(method, url, headers=headers, **kwargs) as response:
        assert response.status_code == 200, await response.aread()
        lines = [line async for line in response.aiter_lines()]
    return parse_events(lines)


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Request id -> the exact prompt ids the engine was given (the real engine still runs)."""
    seen: dict[str, list[int]] = {}
    original = Engine.generate

    def observed(self: Engine, request_id: str, prompt_ids: Any, *args: Any) -> Any:
        seen[request_id] = [int(i) for i in prompt_ids]
        return original(self, request_id, prompt_ids, *args)

    monkeypatch.setattr(Engine, "generate", observed)
    return seen


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_llama_dir: Any) -> Any:
    _, tokenizer = load_causal_lm(tiny_llama_dir)
    return tokenizer


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    from services.inference.engine.prompts import chat_prompt_ids, declare_control_tokens

    declare_control_tokens(tokenizer)
    return chat_prompt_ids(tokenizer, messages)
