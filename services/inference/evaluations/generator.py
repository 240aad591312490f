"""How evaluation and prompt-lab code asks a model for answers: one interface, two ways.

- `ApiGenerator` (the arq worker, which loads no model): the inference service's own API over
  HTTP — `/v1/chat/completions` (or `/v1/completions` for a model without a chat template),
  and the internal perplexity endpoint — signed with the service's credential and carrying the
  person's identity, so access, quotas and the usage ledger apply exactly as for their own call.
- `LocalGenerator` (the inference app, for the prompt lab's in-request methods): the same
  checks and accounting through `openai_service`, in-process.

Either way a refusal (4xx: no access, a bad parameter) is `GenerationRefused`, not worth a
retry; an outage or a full queue is retried a few times, then `GenerationUnavailable`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from services.inference.deps import InferenceContext
from services.inference.engine import TokenEvent
from services.inference.evaluations import scoring
from services.inference.models import UsageEndpoint, UsageSource, UsageStatus
from services.inference.openai.remote import provider_tokens
from services.inference.openai.schemas import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
)
from services.inference.openai.service import NoChatTemplate, openai_service
from shared.auth.identity import Identity, forwarded_identity_headers
from shared.auth.service_credentials import ServiceName
from shared.errors import LLMNetError, ServiceUnavailable, TooManyRequests
from shared.fields import storable
from shared.internal_http import internal_client

PERPLEXITY_PATH = "/internal/v1/perplexity"
_TRIES = 4


class GenerationRefused(Exception):
    """The inference service refused (4xx): retrying will not help."""

    def __init__(self, reason: str, code: str = "refused", status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.status = status


class GenerationUnavailable(Exception):
    """The inference service could not answer after a few tries."""


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    finish_reason: str | None


class Generator(Protocol):
    async def answer(
        self, caller: Identity, model: str, prompt: str, sampling: dict[str, Any]
    ) -> Sample:
        """One answer of `model` to `prompt` as a user turn (a plain completion without a chat
        template); `sampling`: temperature, top_p, max_tokens, seed."""
        ...

    async def perplexity(
        self, caller: Identity, model: str, text: str
    ) -> scoring.PerplexityResult: ...


def _refusal(response: httpx.Response) -> GenerationRefused:
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    detail = str(body.get("detail") or f"The inference service answered {response.status_code}.")
    return GenerationRefused(detail, str(body.get("code") or "refused"), response.status_code)


class ApiGenerator:
    """The inference API over HTTP (see the module docstring); one pooled client."""

    def __init__(self, base_url: str, service_token: str, *, timeout: float) -> None:
        self._client = internal_client(
            base_url, ServiceName.INFERENCE, service_token, timeout=timeout
        )
        self._plain: set[str] = set()  # models without a chat template: /v1/completions

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, caller: Identity, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST with retries on outages and 429/503; a 4xx is raised as a refusal."""
        headers = forwarded_identity_headers(caller)
        for attempt in range(1, _TRIES + 1):
            try:
                response = await self._client.post(path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                if attempt == _TRIES:
                    raise GenerationUnavailable(f"inference unreachable: {exc}") from exc
                await asyncio.sleep(attempt)
                continue
            if response.status_code == 200:
                return response
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == _TRIES:
                    raise GenerationUnavailable(f"inference answered {response.status_code}")
                header = response.headers.get("retry-after", "")
                await asyncio.sleep(min(int(header), 5) if header.isdigit() else attempt)
                continue
            raise _refusal(response)
        raise GenerationUnavailable("inference did not answer")  # unreachable: for type checkers

    async def answer(
        self, caller: Identity, model: str, prompt: str, sampling: dict[str, Any]
    ) -> Sample:
        started = time.perf_counter()
        if model not in self._plain:
            body = {"model": model, "messages": [{"role": "user", "content": prompt}], **sampling}
            try:
                response = await self._post(caller, "/v1/chat/completions", body)
            except GenerationRefused as refused:
                if refused.code != NoChatTemplate.code:
                    raise
                self._plain.add(model)
            else:
                data = response.json()
                return _sample(
                    str(data["choices"][0]["message"].get("content") or ""), data, started
                )
        started = time.perf_counter()
        response = await self._post(
            caller, "/v1/completions", {"model": model, "prompt": prompt, **sampling}
        )
        data = response.json()
        return _sample(str(data["choices"][0].get("text") or ""), data, started)

    async def perplexity(self, caller: Identity, model: str, text: str) -> scoring.PerplexityResult:
        response = await self._post(caller, PERPLEXITY_PATH, {"model": model, "text": text})
        data = response.json()
        return scoring.PerplexityResult(
            perplexity=float(data["perplexity"]),
            mean_nll=float(data["mean_nll"]),
            tokens=int(data["tokens"]),
            windows=int(data["windows"]),
        )


def _sample(text: str, data: dict[str, Any], started: float) -> Sample:
    usage = data.get("usage") or {}
    return Sample(
        text=storable(text),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        latency_ms=(time.perf_counter() - started) * 1000,
        finish_reason=data["choices"][0].get("finish_reason"),
    )


class LocalGenerator:
    """The same, in the inference app's process (through `openai_service`)."""

    def __init__(self, ctx: InferenceContext) -> None:
        self._ctx = ctx

    async def answer(
        self, caller: Identity, model: str, prompt: str, sampling: dict[str, Any]
    ) -> Sample:
        chat = ChatCompletionRequest(
            model=model, messages=[ChatMessage(role="user", content=prompt)], **sampling
        )
        try:
            return await self._complete(caller, chat, UsageEndpoint.CHAT_COMPLETIONS)
        except NoChatTemplate:
            plain = CompletionRequest(model=model, prompt=prompt, **sampling)
            return await self._complete(caller, plain, UsageEndpoint.COMPLETIONS)

    async def _complete(
        self,
        caller: Identity,
        body: ChatCompletionRequest | CompletionRequest,
        endpoint: UsageEndpoint,
    ) -> Sample:
        ctx = self._ctx
        started = time.perf_counter()
        generation = await openai_service.admit(ctx, caller, body, endpoint)
        remote = generation.model.remote
        status = UsageStatus.FAILED
        events = (
            provider_tokens(ctx, remote, body)
            if generation.source is UsageSource.REMOTE and remote is not None
            else openai_service.local_tokens(ctx, generation, body)
        )
        parts: list[str] = []
        try:
            event: TokenEvent
            async for event in events:
                generation.record_progress(event)
                parts.append(event.text)
            status = UsageStatus.COMPLETED
        except (TooManyRequests, ServiceUnavailable) as exc:
            raise GenerationUnavailable(exc.detail) from exc
        finally:
            await events.aclose()
            await openai_service.record_usage_of(ctx, generation, status)
        return Sample(
            text=storable("".join(parts)),
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=generation.finish_reason,
        )

    async def perplexity(self, caller: Identity, model: str, text: str) -> scoring.PerplexityResult:
        return await scoring.perplexity(self._ctx, caller, model, text)


def refusal_of(error: LLMNetError) -> GenerationRefused:
    """An in-process refusal in the shape the API generator raises."""
    return GenerationRefused(error.detail, error.code, error.status_code)
