"""The internal client other services use to ask accounts about users.

One pooled httpx client per process, built in the service's lifespan. Errors are translated
here: an unknown user is NotFound, an unreachable accounts service is ServiceUnavailable.
"""

from __future__ import annotations

import uuid

import httpx
from pydantic import BaseModel

from shared.auth.service_credentials import ServiceName
from shared.errors import NotFound, ServiceUnavailable
from shared.internal_http import internal_client


class AccountUser(BaseModel):
    id: uuid.UUID
    username: str
    role: str
    is_model_developer: bool
    is_banned: bool


class AccountsClient:
    def __init__(
        self, base_url: str, caller: ServiceName, service_token: str, *, timeout: float = 10.0
    ) -> None:
        self._client = internal_client(base_url, caller, service_token, timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str, missing: str) -> AccountUser:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "The accounts service is unavailable; try again shortly.", retry_after=5
            ) from exc
        if response.status_code == 404:
            raise NotFound(missing, code="user_not_found")
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"The accounts service answered {response.status_code}.", retry_after=5
            )
        return AccountUser.model_validate_json(response.content)

    async def user(self, user_id: uuid.UUID) -> AccountUser:
        return await self._get(f"/internal/users/{user_id}", "No such user.")

    async def user_by_name(self, username: str) -> AccountUser:
        return await self._get(
            f"/internal/users/by-name/{username.lower()}", f"No user named '{username}'."
        )
