"""External OpenAI-compatible providers: URL checks, encrypted keys, remote models."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from services.models_hub.models import Provider
from shared import outbound
from shared.auth.identity import forwarded_identity_headers
from shared.auth.service_credentials import ServiceName, service_headers
from shared.testing import serve_app
from tests.conftest import SERVICE_TOKENS
from tests.factories import identity_of, user_session
from tests.fakes.openai_provider import create_fake_provider
from tests.models_hub.conftest import developer, upload


@pytest.fixture
async def fake_provider():
    app = create_fake_provider(api_key="sk-secret", models=["fake-gpt", "fake-mini"])
    async with serve_app(app) as url:
        yield url


async def test_private_and_loopback_urls_are_refused(client):
    dev = await developer(client)
    for url in (
        "http://127.0.0.1:9/v1",
        "http://169.254.169.254/latest",
        "ftp://example.com",
        "http://10.0.0.8/v1",
    ):
        response = await client.post(
            "/api/v1/providers", json={"name": "x", "base_url": url}, headers=dev.headers
        )
        assert response.status_code == 422, url
        assert response.json()["code"] == "url_not_allowed"


async def test_register_provider_with_models_and_test_connection(
    client, platform, fake_provider, hub_limits
):
    hub_limits(outbound_allow=["127.0.0.1"])
    dev = await developer(client, "remoteowner")
    created = await client.post(
        "/api/v1/providers",
        json={
            "name": "Fake AI",
            "base_url": f"{fake_provider}/v1",
            "api_key": "sk-secret",
            "models": [{"remote_model": "fake-gpt", "name": "Fake GPT"}],
        },
        headers=dev.headers,
    )
    assert created.status_code == 201, created.text
    provider = created.json()
    assert provider["has_api_key"] is True
    assert "sk-secret" not in created.text
    (model_id,) = provider["model_ids"]

    # Remote models are private unless made public: others would spend the owner's key.
    assert (await client.get(f"/api/v1/models/{model_id}")).status_code == 404
    model = (await client.get(f"/api/v1/models/{model_id}", headers=dev.headers)).json()
    assert model["visibility"] == "private"
    assert model["source"] == "remote"
    assert model["status"] == "ready"
    assert model["ref"] == "remoteowner/fake-gpt"
    assert model["remote_model"] == "fake-gpt"

    test = await client.post(f"/api/v1/providers/{provider['id']}/test", headers=dev.headers)
    assert test.status_code == 200
    assert test.json()["ok"] is True
    assert test.json()["models"] == ["fake-gpt", "fake-mini"]

    # The key is encrypted at rest.
    async with platform.sessionmaker() as session:
        stored = await session.scalar(select(Provider))
    assert stored.api_key_encrypted
    assert "sk-secret" not in stored.api_key_encrypted

    # The one access check hands inference the decrypted key, over the internal API only.
    async with httpx.AsyncClient(base_url=platform.service_urls["models_hub"]) as internal:
        access = await internal.get(
            f"/internal/models/{model_id}",
            headers={
                **service_headers(ServiceName.INFERENCE, SERVICE_TOKENS[ServiceName.INFERENCE]),
                **forwarded_identity_headers(identity_of(dev)),
            },
        )
        assert access.json()["remote"]["api_key"] == "sk-secret"
        assert (await internal.get(f"/internal/models/{model_id}")).status_code == 404

    added = await client.post(
        f"/api/v1/providers/{provider['id']}/models",
        json={"remote_model": "fake-mini"},
        headers=dev.headers,
    )
    assert added.status_code == 201
    remote_models = (
        await client.get("/api/v1/models", params={"source": "remote"}, headers=dev.headers)
    ).json()
    assert len(remote_models["items"]) == 2

    no_uploads = await upload(client, dev, model_id, [("files", ("x.json", b"{}", "a/b"))])
    assert no_uploads.status_code == 400
    assert no_uploads.json()["code"] == "remote_model"


async def test_connection_test_returns_the_providers_error(client, fake_provider, hub_limits):
    hub_limits(outbound_allow=["127.0.0.1"])
    dev = await developer(client)
    provider = (
        await client.post(
            "/api/v1/providers",
            json={"name": "Fake", "base_url": f"{fake_provider}/v1", "api_key": "sk-wrong"},
            headers=dev.headers,
        )
    ).json()
    test = (
        await client.post(f"/api/v1/providers/{provider['id']}/test", headers=dev.headers)
    ).json()
    assert test["ok"] is False
    assert test["status_code"] == 401
    assert test["error"]

    fixed = await client.patch(
        f"/api/v1/providers/{provider['id']}", json={"api_key": "sk-secret"}, headers=dev.headers
    )
    assert fixed.status_code == 200
    test = (
        await client.post(f"/api/v1/providers/{provider['id']}/test", headers=dev.headers)
    ).json()
    assert test["ok"] is True


async def test_providers_belong_to_their_owner(client, fake_provider, hub_limits):
    hub_limits(outbound_allow=["127.0.0.1"])
    dev = await developer(client)
    other = await user_session(client)
    provider = (
        await client.post(
            "/api/v1/providers",
            json={
                "name": "Mine",
                "base_url": f"{fake_provider}/v1",
                "models": [{"remote_model": "fake-gpt"}],
            },
            headers=dev.headers,
        )
    ).json()
    path = f"/api/v1/providers/{provider['id']}"
    assert (await client.get(path, headers=other.headers)).status_code == 404
    assert (await client.delete(path, headers=other.headers)).status_code == 404
    assert (await client.get("/api/v1/providers", headers=other.headers)).json() == []

    assert (await client.delete(path, headers=dev.headers)).status_code == 204
    model = await client.get(f"/api/v1/models/{provider['model_ids'][0]}")
    assert model.status_code == 404  # its models went with it


async def test_connections_go_to_the_checked_address_not_a_fresh_lookup(
    client, fake_provider, hub_limits, monkeypatch
):
    """DNS rebinding: the name is resolved once per connection, by the check, and pinned."""
    hub_limits(outbound_allow=["127.0.0.1"])
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(outbound, "_getaddrinfo", resolver)
    port = fake_provider.rsplit(":", 1)[1]
    dev = await developer(client)
    provider = (
        await client.post(
            "/api/v1/providers",
            json={
                "name": "Named",
                "base_url": f"http://provider.test:{port}/v1",
                "api_key": "sk-secret",
            },
            headers=dev.headers,
        )
    ).json()
    asked.clear()
    test = await client.post(f"/api/v1/providers/{provider['id']}/test", headers=dev.headers)
    # provider.test is unknown to the machine's resolver: only a pinned connection gets there.
    assert test.json()["ok"] is True, test.text
    assert asked == ["provider.test"]
