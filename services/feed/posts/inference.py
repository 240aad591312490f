"""The feed's calls to the inference service's public API, as the caller: generation (the
OpenAI-compatible API), rendering prompt templates, importing conversations.

The feed never imports the engine: it signs its request with its own service credential and
forwards the person's identity, so the inference service applies that person's access, quotas
and ledger exactly as for a direct call. Generation tells a refusal (4xx) from an outage, for
the job to retry or not; the other calls answer within a request, so the inference service's
refusal is passed on to the client as it was given (status, code, detail, fields).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from shared.auth.identity import Identity, forwarded_identity_headers
from shared.auth.service_credentials import ServiceName
from shared.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    LLMNetError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    UnprocessableEntity,
)
from shared.internal_http import internal_client

# Requests that only read or write rows answer in well under this.
_API_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_REFUSALS: dict[int, type[LLMNetError]] = {
    400: BadRequest,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: UnprocessableEntity,
}


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


def _passed_on(response: httpx.Response) -> LLMNetError:
    """The inference service's refusal as the feed's own error, same status, code and detail."""
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    detail = str(body.get("detail") or f"The inference service answered {response.status_code}.")
    code = body.get("code") if isinstance(body.get("code"), str) else None
    header = response.headers.get("retry-after", "").strip()
    retry_after = int(header) if header.isdigit() else 5
    if response.status_code == 429:
        return TooManyRequests(detail, retry_after=retry_after, code=code)
    error = _REFUSALS.get(response.status_code)
    if error is None:
        return ServiceUnavailable(
            f"The inference service answered {response.status_code}; try again shortly.",
            retry_after=retry_after,
        )
    fields = [
        FieldError(field=str(f.get("field")), message=str(f.get("message")))
        for f in body.get("fields") or []
        if isinstance(f, dict)
    ]
    return error(detail, code=code, fields=fields or None)


class InferenceClient:
    def __init__(self, base_url: str, service_token: str, *, timeout: float) -> None:
        self._client = internal_client(base_url, ServiceName.FEED, service_token, timeout=timeout)

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

    async def _api(self, caller: Identity, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.post(
                path, json=body, headers=forwarded_identity_headers(caller), timeout=_API_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "The inference service is unavailable; try again shortly.", retry_after=5
            ) from exc
        if response.status_code not in (200, 201):
            raise _passed_on(response)
        data = response.json()
        assert isinstance(data, dict)
        return data

    async def render_template(
        self, caller: Identity, template_id: uuid.UUID, variables: dict[str, str]
    ) -> str:
        """The prompt template rendered as `caller` may (404 for a template they may not see,
        422 naming missing or unknown variables)."""
        data = await self._api(
            caller, f"/api/v1/prompt-templates/{template_id}/render", {"variables": variables}
        )
        return str(data["text"])

    async def import_conversation(
        self, caller: Identity, document: dict[str, Any]
    ) -> dict[str, Any]:
        """A new conversation of `caller` from a conversation document (the JSON export format);
        the conversation as the inference service answers it."""
        return await self._api(caller, "/api/v1/conversations/import", document)
