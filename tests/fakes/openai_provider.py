"""A fake OpenAI-compatible provider for tests: serve it with `shared.testing.serve_app`.

    app = create_fake_provider(api_key="sk-test", models=["fake-gpt"])
    async with serve_app(app) as url:   # base URL; the API is under f"{url}/v1"
        ...

Behaviour (deterministic):
- `Authorization: Bearer <api_key>` is required; otherwise 401 with an OpenAI error body
  `{"error": {"message", "type", "code"}}`.
- `GET /v1/models` lists the models; `POST /v1/chat/completions` and `POST /v1/completions`
  answer with the last user message (chat) or the prompt (completions) reversed character by
  character, cut to `max_tokens` (or `max_completion_tokens`) whitespace-separated tokens
  (finish_reason "length" when cut, else "stop"). Token counts in `usage` are whitespace
  tokens. An unknown model is a 404 `model_not_found`.
- `"stream": true` answers SSE: one `data: {chunk}` event per token, a final chunk with the
  finish_reason, with `stream_options.include_usage` a last chunk with empty `choices` and
  the usage (and `"usage": null` on the others), then `data: [DONE]`.

Knobs on `app.state`, changeable while it runs:
- `fail_with: int | None` answers every API request with that status and an OpenAI error body
  (after authentication; 429 and 503 carry `Retry-After: 1`);
- `delay_seconds: float` sleeps before answering (before authentication too);
- `chunk_delay_seconds: float` sleeps between streamed events;
- `requests: list[RecordedRequest]` records every request received, failed ones included;
- `api_key` and `models` can be changed as well.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

CREATED = 1_700_000_000
_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body, the raw text if it was not JSON, None when empty


def openai_error(
    status: int, message: str, *, type_: str | None = None, code: str | None = None
) -> JSONResponse:
    default_type, default_code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", "fake_error")
    )
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return JSONResponse(
        {
            "error": {
                "message": message,
                "type": type_ or default_type,
                "param": None,
                "code": code or default_code,
            }
        },
        status_code=status,
        headers=headers,
    )


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _count(text: str) -> int:
    return len(text.split())


def _answer(source: str, max_tokens: Any) -> tuple[list[str], str]:
    """The reply's tokens (the source reversed, split on whitespace) and finish_reason."""
    tokens = source[::-1].split()
    valid = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 0
    if valid and len(tokens) > max_tokens:
        return tokens[:max_tokens], "length"
    return tokens, "stop"


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def create_fake_provider(
    *, api_key: str = "sk-test", models: Sequence[str] = ("fake-gpt",)
) -> FastAPI:
    app = FastAPI(title="fake OpenAI-compatible provider")
    app.state.api_key = api_key
    app.state.models = list(models)
    app.state.fail_with = None
    app.state.delay_seconds = 0.0
    app.state.chunk_delay_seconds = 0.0
    app.state.requests = []
    ids = itertools.count(1)

    async def prelude(request: Request) -> tuple[Any, Response | None]:
        """Record, delay, authenticate, fail on demand; the parsed body or a response."""
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        app.state.requests.append(
            RecordedRequest(request.method, request.url.path, dict(request.headers), body)
        )
        if app.state.delay_seconds:
            await asyncio.sleep(app.state.delay_seconds)
        if request.headers.get("authorization") != f"Bearer {app.state.api_key}":
            return body, openai_error(
                401,
                "Incorrect API key provided. You can find your API key in your account.",
                code="invalid_api_key",
            )
        if app.state.fail_with is not None:
            status = int(app.state.fail_with)
            return body, openai_error(status, f"The fake provider fails with {status}.")
        return body, None

    def check_generation(body: Any) -> Response | None:
        if not isinstance(body, dict):
            return openai_error(400, "The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return openai_error(400, "You must provide a model parameter.", code="missing_model")
        if model not in app.state.models:
            return openai_error(404, f"The model `{model}` does not exist.", code="model_not_found")
        return None

    def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    async def stream(
        events: list[dict[str, Any]], final_usage: dict[str, int] | None
    ) -> AsyncIterator[bytes]:
        for event in events:
            if final_usage is not None:
                event["usage"] = None
            yield _sse(event)
            if app.state.chunk_delay_seconds:
                await asyncio.sleep(app.state.chunk_delay_seconds)
        if final_usage is not None:
            base = {k: events[0][k] for k in ("id", "object", "created", "model")}
            yield _sse({**base, "choices": [], "usage": final_usage})
        yield _sse("[DONE]")

    def include_usage(body: dict[str, Any]) -> bool:
        options = body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        _, early = await prelude(request)
        if early is not None:
            return early
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": CREATED, "owned_by": "fake"}
                    for m in app.state.models
                ],
            }
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body, early = await prelude(request)
        early = early or check_generation(body)
        if early is not None:
            return early
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return openai_error(400, "'messages' must be a non-empty array.", code="bad_messages")
        last_user = next(
            (
                _text_of(m.get("content"))
                for m in reversed(messages)
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        prompt_tokens = sum(
            _count(_text_of(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        tokens, finish_reason = _answer(last_user, limit)
        counts = usage(prompt_tokens, len(tokens))
        completion_id = f"chatcmpl-fake{next(ids)}"
        model = body["model"]
        if body.get("stream") is True:
            base = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
            }
            events = [
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ],
                }
            ]
            events += [
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": token if i == 0 else f" {token}"},
                            "finish_reason": None,
                        }
                    ],
                }
                for i, token in enumerate(tokens)
            ]
            events.append(
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]}
            )
            return StreamingResponse(
                stream(events, counts if include_usage(body) else None),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " ".join(tokens)},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": counts,
            }
        )

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body, early = await prelude(request)
        early = early or check_generation(body)
        if early is not None:
            return early
        prompt = body.get("prompt")
        if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            prompt = prompt[-1] if prompt else ""
        if not isinstance(prompt, str):
            return openai_error(
                400, "'prompt' must be a string or an array of strings.", code="invalid_prompt"
            )
        tokens, finish_reason = _answer(prompt, body.get("max_tokens"))
        counts = usage(_count(prompt), len(tokens))
        completion_id = f"cmpl-fake{next(ids)}"
        model = body["model"]
        base = {
            "id": completion_id,
            "object": "text_completion",
            "created": CREATED,
            "model": model,
        }
        if body.get("stream") is True:
            events: list[dict[str, Any]] = [
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "text": token if i == 0 else f" {token}",
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
                for i, token in enumerate(tokens)
            ]
            events.append(
                {
                    **base,
                    "choices": [
                        {"index": 0, "text": "", "logprobs": None, "finish_reason": finish_reason}
                    ],
                }
            )
            return StreamingResponse(
                stream(events, counts if include_usage(body) else None),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return JSONResponse(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "text": " ".join(tokens),
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": counts,
            }
        )

    return app
