"""Accounts' internal API: API keys resolve for the gateway only, users for the services."""

from __future__ import annotations

import httpx
import pytest

from shared.auth.api_keys import hash_api_key
from shared.auth.service_credentials import ServiceName, service_headers
from tests.conftest import INTERNAL_TOKEN, SERVICE_TOKENS
from tests.factories import api_key, user_session


def signed(service: ServiceName) -> dict[str, str]:
    return service_headers(service, SERVICE_TOKENS[service])


@pytest.fixture
async def accounts(platform):
    async with httpx.AsyncClient(base_url=platform.service_urls["accounts"]) as client:
        yield client


async def test_api_keys_resolve_for_the_gateway_only(client, accounts):
    user = await user_session(client)
    key = await api_key(client, user)
    body = {"key_hash": hash_api_key(key["key"])}
    resolved = await accounts.post(
        "/internal/api-keys/resolve", json=body, headers=signed(ServiceName.GATEWAY)
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["username"] == user.username
    for headers in (
        {},
        {"x-llmnet-internal-token": INTERNAL_TOKEN},
        signed(ServiceName.INFERENCE),
        signed(ServiceName.MODELS_HUB),
    ):
        refused = await accounts.post("/internal/api-keys/resolve", json=body, headers=headers)
        assert refused.status_code == 404, headers


async def test_users_are_looked_up_by_services_not_by_the_gateway(client, accounts):
    user = await user_session(client)
    for service in (ServiceName.MODELS_HUB, ServiceName.INFERENCE, ServiceName.FEED):
        found = await accounts.get(f"/internal/users/{user.id}", headers=signed(service))
        assert found.status_code == 200
        assert found.json()["username"] == user.username
    for headers in ({}, {"x-llmnet-internal-token": INTERNAL_TOKEN}, signed(ServiceName.GATEWAY)):
        for path in (f"/internal/users/{user.id}", f"/internal/users/by-name/{user.username}"):
            refused = await accounts.get(path, headers=headers)
            assert refused.status_code == 404
            assert "role" not in refused.json()
