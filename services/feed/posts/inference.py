"""Generation through the inference service's public OpenAI-compatible API, as the caller.

The feed never imports the engine: it signs its request with its own service credential and
forwards the person's identity, so the inference service applies that person's access, quotas
and ledger exactly as for a direct call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shared.auth.identity import Identity, forwarded_identity_headers
from shared.auth.service_credentials import ServiceName, service_headers


class GenerationRejected(Exception):
    """The inference service refused the request (4xx): retrying will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GenerationUnavailable(Exception):
    """The inference service could not answer now (network, 5xx): worth another try."""


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return f"The inference service refused the request: {detail}"
    return f"The inference service refused the request ({response.status_code})."


class InferenceClient:
    def __init__(self, base_url: str, service_token: str, *, timeout: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=service_headers(ServiceName.FEED, service_token),
            timeout=httpx.Timeout(timeout, connect=5.0),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def chat(
        self,
        caller: Identity,
        model: str,
        messages: list[dict[str, str]],
        parameters: dict[str, Any],
    ) -> Completion:
        body = {"model": model, "messages": messages, **parameters}
        try:
            response = await self._client.post(
                "/v1/chat/completions", json=body, headers=forwarded_identity_headers(caller)
            )
        except httpx.HTTPError as exc:
            raise GenerationUnavailable(f"inference unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise GenerationUnavailable(f"inference answered {response.status_code}")
        if response.status_code != 200:
            raise GenerationRejected(_reason(response))
        data = response.json()
        usage = data.get("usage") or {}
        return Completion(
            content=str(data["choices"][0]["message"].get("content") or ""),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )
