"""The hub's internal API answers only the services that need it, with what they need."""

from __future__ import annotations

import httpx
import pytest

from shared.auth.identity import forwarded_identity_headers, identity_headers
from shared.auth.service_credentials import ServiceName, service_headers
from shared.testing import serve_app
from tests.conftest import INTERNAL_TOKEN, SERVICE_TOKENS
from tests.factories import identity_of
from tests.fakes.openai_provider import create_fake_provider
from tests.models_hub.conftest import create_model, developer


def signed(service: ServiceName) -> dict[str, str]:
    return service_headers(service, SERVICE_TOKENS[service])


@pytest.fixture
async def remote_model(client, hub_limits):
    hub_limits(outbound_allow=["127.0.0.1"])
    async with serve_app(create_fake_provider(api_key="sk-owner")) as url:
        dev = await developer(client, "keyowner")
        created = await client.post(
            "/api/v1/providers",
            json={
                "name": "Paid",
                "base_url": f"{url}/v1",
                "api_key": "sk-owner",
                "models": [{"remote_model": "fake-gpt", "visibility": "public"}],
            },
            headers=dev.headers,
        )
        assert created.status_code == 201, created.text
        yield dev, created.json()["model_ids"][0]


@pytest.fixture
async def hub(platform):
    async with httpx.AsyncClient(base_url=platform.service_urls["models_hub"]) as client:
        yield client


async def test_only_the_inference_service_gets_the_decrypted_key(hub, remote_model):
    dev, model_id = remote_model
    who = forwarded_identity_headers(identity_of(dev))
    as_inference = await hub.get(
        f"/internal/models/{model_id}", headers={**signed(ServiceName.INFERENCE), **who}
    )
    assert as_inference.status_code == 200
    assert as_inference.json()["remote"]["api_key"] == "sk-owner"

    as_feed = await hub.get(
        f"/internal/models/{model_id}", headers={**signed(ServiceName.FEED), **who}
    )
    assert as_feed.status_code == 200
    assert as_feed.json()["remote"]["api_key"] is None
    assert "sk-owner" not in as_feed.text


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no credential"),
        # What the gateway attaches to every forwarded user request opens nothing here.
        pytest.param({"x-llmnet-internal-token": INTERNAL_TOKEN}, id="gateway edge token"),
        pytest.param(signed(ServiceName.GATEWAY), id="the gateway's own credential"),
        pytest.param(signed(ServiceName.ACCOUNTS), id="a service that does not call it"),
        pytest.param(
            service_headers(ServiceName.INFERENCE, SERVICE_TOKENS[ServiceName.FEED]),
            id="inference's name with feed's token",
        ),
        pytest.param(
            service_headers(ServiceName.INFERENCE, "x" * 40), id="inference's name, a guess"
        ),
    ],
)
async def test_everyone_else_finds_no_internal_endpoint(hub, remote_model, headers):
    dev, model_id = remote_model
    ref = f"{dev.username}/fake-gpt"
    for path in (f"/internal/models/{model_id}", f"/internal/models/by-ref/{ref}"):
        response = await hub.get(path, headers=headers)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "not_found"
        assert "sk-owner" not in response.text


async def test_forwarded_user_identity_with_the_edge_token_is_still_refused(hub, remote_model):
    dev, model_id = remote_model
    response = await hub.get(
        f"/internal/models/{model_id}", headers=identity_headers(identity_of(dev), INTERNAL_TOKEN)
    )
    assert response.status_code == 404


async def test_the_feed_learns_which_of_many_models_anyone_may_use_in_one_call(client, hub):
    dev = await developer(client, "manymodels")
    kinds = ("public", "unlisted", "private")
    made = {kind: (await create_model(client, dev, name=f"M {kind}", visibility=kind))["id"]
            for kind in kinds}  # fmt: skip
    gone = "00000000-0000-4000-8000-000000000000"
    asked = {"ids": [*made.values(), gone]}
    response = await hub.post("/internal/models/open", json=asked, headers=signed(ServiceName.FEED))
    assert response.status_code == 200, response.text
    assert sorted(response.json()["open"]) == sorted([made["public"], made["unlisted"]])

    too_many = {"ids": [gone] * 501}
    refused = await hub.post(
        "/internal/models/open", json=too_many, headers=signed(ServiceName.FEED)
    )
    assert refused.status_code == 422
    for headers in ({}, signed(ServiceName.ACCOUNTS)):
        assert (
            await hub.post("/internal/models/open", json=asked, headers=headers)
        ).status_code == 404
