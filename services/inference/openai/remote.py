"""Models served by an external OpenAI-compatible provider, proxied with the same API.

The provider is always asked to stream (with usage), and its chunks become the same token
events the local engine produces, so one formatter serves both. Provider failures map to 502
(its error message included), a slow provider to 504.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import httpx

from services.inference.deps import InferenceContext
from services.inference.engine import TokenEvent
from services.inference.openai.schemas import ChatCompletionRequest, CompletionRequest
from shared.errors import BadGateway, GatewayTimeout
from shared.models_client import RemoteEndpoint
from shared.outbound import pin_outbound_url

# Our extensions, and what we always set ourselves.
_NOT_FORWARDED = {"model", "stream", "stream_options", "top_k", "repetition_penalty", "n"}


class ProviderError(BadGateway):
    code = "provider_error"


def _provider_message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(body)[:300]


async def provider_tokens(
    ctx: InferenceContext, remote: RemoteEndpoint, body: ChatCompletionRequest | CompletionRequest
) -> AsyncGenerator[TokenEvent]:
    # Resolved once and pinned: DNS cannot answer differently between check and connection.
    pinned = await pin_outbound_url(remote.base_url, allow=ctx.settings.outbound_allow)
    chat = isinstance(body, ChatCompletionRequest)
    payload = body.model_dump(exclude_none=True, exclude_defaults=True, exclude=_NOT_FORWARDED)
    if isinstance(body, ChatCompletionRequest):
        payload["messages"] = [m.model_dump(exclude_none=True) for m in body.messages]
    payload.update(model=remote.remote_model, stream=True, stream_options={"include_usage": True})
    headers = dict(pinned.headers)
    if remote.api_key:
        headers["Authorization"] = f"Bearer {remote.api_key}"
    url = pinned.join("chat/completions" if chat else "completions")
    prompt_tokens = completion_tokens = 0
    try:
        async with ctx.remote.stream(
            "POST", url, json=payload, headers=headers, extensions=pinned.extensions
        ) as response:
            if response.status_code != 200:
                message = _provider_message(await response.aread())
                raise ProviderError(
                    f"The model's provider answered {response.status_code}: {message}"
                )
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if usage := chunk.get("usage"):
                    prompt_tokens = int(usage.get("prompt_tokens", prompt_tokens))
                    completion_tokens = int(usage.get("completion_tokens", completion_tokens))
                for choice in chunk.get("choices") or []:
                    text = (
                        (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    )
                    if text:
                        completion_tokens += 1
                    yield TokenEvent(
                        text=text or "",
                        token_id=None,
                        finish_reason=choice.get("finish_reason"),
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens,
                    )
                if usage and not chunk.get("choices"):
                    # The provider's own count replaces ours for the ledger.
                    yield TokenEvent("", None, None, prompt_tokens, completion_tokens)
    except httpx.TimeoutException as exc:
        raise GatewayTimeout(
            "The model's provider did not answer in time.", code="provider_timeout"
        ) from exc
    except httpx.HTTPError as exc:
        raise ProviderError(f"The model's provider is unreachable: {exc}.") from exc
    except ValueError as exc:
        raise ProviderError("The model's provider sent a malformed stream.") from exc
