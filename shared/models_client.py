"""How services ask the model hub about models: the one access check, as a client.

The schemas here are the contract of the hub's internal API (`/internal/models/...`); the hub
answers with them and the inference, conversation and feed services read them. A model the
caller may not use is NotFound, exactly as in the public API.

Exports: ModelAccess, ServableVersion, RemoteEndpoint, UsableModel, ModelsClient.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field, TypeAdapter

from shared.auth.identity import Identity, forwarded_identity_headers
from shared.auth.service_credentials import ServiceName
from shared.errors import NotFound, ServiceUnavailable
from shared.internal_http import internal_client


class ServableVersion(BaseModel):
    id: uuid.UUID
    number: int
    storage_prefix: str
    files: list[dict[str, Any]]
    details: dict[str, Any]


class RemoteEndpoint(BaseModel):
    provider_id: uuid.UUID
    base_url: str
    api_key: str | None  # only ever sent to the inference service
    remote_model: str
    context_length: int | None = None  # as the owner states it (None: unknown)


class ModelAccess(BaseModel):
    """The caller may use this model; here is how to serve it."""

    id: uuid.UUID
    ref: str
    owner_id: uuid.UUID
    visibility: str
    source: str
    status: str
    access: str  # "use" or "manage"
    default_params: dict[str, Any]
    system_prompt: str | None
    # The version to serve: the active one, or the one the name asked for (`<ref>@<number>`).
    active_version: ServableVersion | None
    remote: RemoteEndpoint | None
    # Owner-set daily token bounds for everyone but the owner (None: unbounded).
    daily_token_cap: int | None = None
    user_daily_token_cap: int | None = None


class UsableModel(BaseModel):
    id: uuid.UUID
    ref: str
    owner: str
    source: str
    created_at: datetime


_USABLE = TypeAdapter(list[UsableModel])

#: The most model ids one question about openness may name.
MAX_OPEN_QUESTION = 500


class OpenModelsQuestion(BaseModel):
    ids: list[uuid.UUID] = Field(max_length=MAX_OPEN_QUESTION)


class OpenModels(BaseModel):
    """Those of the asked ids whose models anyone may use (public or unlisted)."""

    open: list[uuid.UUID]


class ModelNotFound(NotFound):
    code = "model_not_found"


# The hub's own rules (services/accounts/auth/schemas.py USERNAME_PATTERN, lenient on length as
# the users routes are; services/models_hub/catalog/schemas.py SLUG_PATTERN). Matched whole with
# fullmatch, so no newline, NUL, "..", space or non-ASCII letter ever reaches the hub's URL.
_OWNER = re.compile(r"[A-Za-z0-9_]{1,32}")
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_NUMBER = re.compile(r"[1-9][0-9]{0,8}")


def _detail(response: httpx.Response) -> str | None:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return None
    return detail if isinstance(detail, str) else None


class ModelsClient:
    def __init__(
        self, base_url: str, caller: ServiceName, service_token: str, *, timeout: float = 10.0
    ) -> None:
        self._client = internal_client(base_url, caller, service_token, timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str, caller: Identity | None) -> httpx.Response:
        headers = forwarded_identity_headers(caller) if caller else {}
        try:
            response = await self._client.get(path, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "The model hub is unavailable; try again shortly.", retry_after=5
            ) from exc
        if response.status_code == 404:
            # The hub's own words: "No such model." where the caller may not see it.
            raise ModelNotFound(_detail(response) or "No such model.")
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"The model hub answered {response.status_code}.", retry_after=5
            )
        return response

    async def access(self, ref: str, caller: Identity | None) -> ModelAccess:
        """The model `<owner>/<slug>` if the caller may use it (else ModelNotFound); with
        `@<number>` appended, served at that ready version instead of the active one."""
        name, at, number = ref.partition("@")
        owner, sep, slug = name.partition("/")
        if (
            not sep
            or not _OWNER.fullmatch(owner)
            or not _SLUG.fullmatch(slug)
            or (at and not _NUMBER.fullmatch(number))
        ):
            # A malformed name is a model that does not exist, as OpenAI answers an unknown one.
            raise ModelNotFound(
                "No such model. Model names look like '<owner>/<slug>': the owner's username "
                "(letters, digits, '_'), then the model's slug (lowercase letters, digits, '.', "
                "'_', '-'; starting with a letter or digit); '<owner>/<slug>@<n>' names its "
                "version n."
            )
        # Quoted although the patterns leave nothing to quote: the path stays safe if they widen.
        path = f"/internal/models/by-ref/{quote(owner, safe='')}/{quote(slug, safe='')}"
        if at:
            path += f"?version={int(number)}"
        response = await self._get(path, caller)
        return ModelAccess.model_validate_json(response.content)

    async def access_by_id(self, model_id: uuid.UUID, caller: Identity | None) -> ModelAccess:
        """The model with this id if the caller may use it (else ModelNotFound)."""
        response = await self._get(f"/internal/models/{model_id}", caller)
        return ModelAccess.model_validate_json(response.content)

    async def open_models(self, model_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these models anyone may use (the others are private or gone), asked in
        one call (at most MAX_OPEN_QUESTION ids)."""
        body = OpenModelsQuestion(ids=model_ids).model_dump(mode="json")
        try:
            response = await self._client.post("/internal/models/open", json=body)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "The model hub is unavailable; try again shortly.", retry_after=5
            ) from exc
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"The model hub answered {response.status_code}.", retry_after=5
            )
        return set(OpenModels.model_validate_json(response.content).open)

    async def usable(self, caller: Identity) -> list[UsableModel]:
        """Ready models the caller may use and should see listed."""
        response = await self._get("/internal/models", caller)
        return _USABLE.validate_json(response.content)
