"""Path normalisation at the gateway: no encoding of `..`, `/internal` or `/metrics` gets past
it, and legitimate paths with encoded characters still work.

Requests go over a raw socket (tests/gateway/rawhttp.py) so `..` and odd escapes reach the
gateway exactly as an attacker would send them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from shared.observability import REQUESTS
from shared.testing import serve_app
from tests.factories import UserSession, user_session
from tests.fakes.openai_provider import create_fake_provider
from tests.gateway.rawhttp import RawResponse, raw_request
from tests.models_hub.conftest import developer, hub_limits  # noqa: F401 (fixture)

PROVIDER_KEY = "sk-never-leaves-the-hub-0123"

# {model} is a remote model whose provider key the hub's internal endpoint would decrypt;
# {user} a user whose internal record (role, is_banned) accounts would answer.
TRAVERSALS = [
    "/api/v1/models/../../../internal/models/{model}",
    "/api/v1/models/../../internal/models/{model}",
    "/api/v1/models/{model}/../../../../internal/models/{model}",
    "/api/v1/models/%2e%2e/%2e%2e/%2e%2e/internal/models/{model}",
    "/api/v1/models/%2E%2e/%2e%2E/%2E%2E/internal/models/{model}",
    "/api/v1/models/.%2e/.%2e/.%2e/internal/models/{model}",
    "/api/v1/models/%2e./%2e./%2e./internal/models/{model}",
    "/api/v1/models/..%2f..%2f..%2finternal/models/{model}",
    "/api/v1/models/..%2F..%2F..%2Finternal%2Fmodels%2F{model}",
    "/api/v1/models/%2e%2e%2f%2e%2e%2f%2e%2e%2finternal/models/{model}",
    "/api/v1/models%2f..%2f..%2f..%2finternal/models/{model}",
    "/api/v1/models/..\\..\\..\\internal\\models\\{model}",
    "/api/v1/models/..%5c..%5c..%5cinternal%5cmodels%5c{model}",
    "/api/v1/models/%5c..%5c..%5c..%5cinternal/models/{model}",
    "//internal/models/{model}",
    "/api/v1/models//../../../internal/models/{model}",
    "/api/v1/models/%252e%252e/%252e%252e/%252e%252e/internal/models/{model}",
    "/api/v1/models/..%252f..%252f..%252finternal/models/{model}",
    "/api/v1/models/%25%32%65%25%32%65/internal/models/{model}",
    "/api/v1/models/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/internal/models/{model}",
    "/api/v1/models/..%c0%af..%c0%af..%c0%afinternal/models/{model}",
    "/api/v1/models/%e0%80%ae%e0%80%ae/%e0%80%ae%e0%80%ae/internal/models/{model}",
    "/api/v1/models/%ef%bc%8e%ef%bc%8e/%ef%bc%8e%ef%bc%8e/%ef%bc%8e%ef%bc%8e/internal/models/{model}",
    "/api/v1/models/..%ef%bc%8f..%ef%bc%8f..%ef%bc%8finternal/models/{model}",
    "/api/v1/models/%u002e%u002e/%u002e%u002e/%u002e%u002e/internal/models/{model}",
    "/api/v1/models/%%32%65%%32%65/internal/models/{model}",
    "/api/v1/models/..%00/../../internal/models/{model}",
    "/api/v1/models/%00/../../../internal/models/{model}",
    "/api/v1/models/{model}%00.json",
    "/api/v1/models/%0d%0aX-Smuggled:%201",
    "/api/v1/models/..%09/..%09/..%09/internal/models/{model}",
    "/api/v1/models/.",
    "/api/v1/models/./../../../internal/models/{model}",
    "/api/v1/models/..;/..;/..;/internal/models/{model}",
    "/api/v1/models/%2e%2e;x/%2e%2e;x/%2e%2e;x/internal/models/{model}",
    "/api/v1/models;x/../../../internal/models/{model}",
    "/api/v1/models/..%20/..%20/..%20/internal/models/{model}",
    "/api/v1/models/../../../internal/models/{model}?include=api_key",
    "/internal/models/{model}",
    "/internal/users/{user}",
    "/api/v1/users/../../../internal/users/{user}",
    "/api/v1/users/%2e%2e/%2e%2e/%2e%2e/internal/users/{user}",
    "/api/v1/users/..%2f..%2f..%2finternal%2fusers%2f{user}",
    "/api/v1/auth/../../../internal/api-keys/resolve",
    "/api/v1/auth/../../../metrics",
    "/api/v1/auth/%2e%2e/%2e%2e/%2e%2e/metrics",
    "/api/v1/users/..%2f..%2f..%2fmetrics",
    "/v1/../healthz",
    "/v1/%2e%2e/readyz",
    "/api/v1/posts/../../../readyz",
    "/api/v1/models/%2e%2e/%2e%2e/%2e%2e/openapi.json",
    "http://127.0.0.1/internal/models/{model}",
]

# What an internal endpoint, a probe or a metrics page would put in its answer.
LEAKS = (PROVIDER_KEY, "api_key", "is_banned", '"role"', "llmnet_http_", '"status"')


@dataclass
class Targets:
    model_id: str
    user: UserSession


@pytest.fixture
async def targets(client: httpx.AsyncClient, hub_limits) -> AsyncIterator[Targets]:  # noqa: F811
    hub_limits(outbound_allow=["127.0.0.1"])
    async with serve_app(create_fake_provider(api_key=PROVIDER_KEY)) as url:
        owner = await developer(client)
        created = await client.post(
            "/api/v1/providers",
            json={
                "name": "Paid",
                "base_url": f"{url}/v1",
                "api_key": PROVIDER_KEY,
                "models": [{"remote_model": "fake-gpt", "visibility": "public"}],
            },
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        yield Targets(created.json()["model_ids"][0], await user_session(client))


# Asked in the background (the gateway's replica health checks), never by a client's path.
PROBES = {"/healthz", "/readyz"}


def upstream_requests() -> float:
    """Requests any service (not the gateway) has answered so far in this process, health
    probes aside."""
    return sum(
        sample.value
        for metric in REQUESTS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels["service"] != "gateway"
        and sample.labels["route"] not in PROBES
    )


def assert_refused_at_the_gateway(response: RawResponse, target: str) -> None:
    assert response.status in (400, 404), (target, response.status, response.text)
    for leak in LEAKS:
        assert leak not in response.text, (target, response.text)
    body = response.json()
    assert set(body) == {"code", "detail", "request_id"}, (target, body)
    assert body["request_id"] == response.headers["x-request-id"]
    if response.status == 400:
        assert body["code"] == "invalid_path", (target, body)
    else:
        # The gateway's own 404: the path is under no public prefix.
        assert body["code"] == "not_found", (target, body)
        assert body["detail"].startswith("No API route"), (target, body)


@pytest.mark.parametrize("as_user", [False, True], ids=["anonymous", "signed-in"])
async def test_no_encoding_of_dot_segments_reaches_a_non_public_path(
    platform, targets: Targets, as_user: bool
) -> None:
    assert len(TRAVERSALS) >= 30
    headers = targets.user.headers if as_user else {}
    before = upstream_requests()
    for template in TRAVERSALS:
        target = template.format(model=targets.model_id, user=targets.user.id)
        response = await raw_request(platform.gateway_url, target, headers=headers)
        assert_refused_at_the_gateway(response, target)
    # Refused before any service saw them: not one request was forwarded.
    assert upstream_requests() == before
    # (The count does move when the gateway forwards something.)
    assert (await raw_request(platform.gateway_url, "/api/v1/auth/jwks")).status == 200
    assert upstream_requests() > before


async def test_the_refusal_says_what_to_fix(platform) -> None:
    for target, says in (
        ("/api/v1/models/../x", "'..' segment"),
        ("/api/v1/models/%2e%2e/x", "encoded '.'"),
        ("/api/v1/models/a%2fb", "encoded '/'"),
        ("/api/v1/models/a//b", "empty segment"),
        ("/api/v1/models/a\\b", "backslash"),
        ("/api/v1/models/%252e", "encoded twice"),
        ("/api/v1/models/%c0%ae", "not valid UTF-8"),
        ("/api/v1/models/%00", "control character"),
        ("/api/v1/models/%zz", "malformed percent-escape"),
    ):
        response = await raw_request(platform.gateway_url, target)
        assert response.status == 400, target
        assert says in response.json()["detail"], (target, response.json())


async def test_a_signed_in_user_cannot_read_the_internal_api_either(
    platform, targets: Targets
) -> None:
    # The same request the hole allowed, straight: it is simply no public path.
    response = await raw_request(
        platform.gateway_url, f"/internal/models/{targets.model_id}", headers=targets.user.headers
    )
    assert response.status == 404
    assert PROVIDER_KEY not in response.text


async def test_legitimate_encoded_paths_and_queries_still_work(client, platform) -> None:
    owner = await developer(client)
    for slug, description in (("tiny-poet", "Writes haiku"), ("tiny.poet", "uses a/b tests")):
        response = await client.post(
            "/api/v1/models",
            json={"name": slug, "slug": slug, "description": description, "visibility": "public"},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text

    by_ref = await raw_request(
        platform.gateway_url, f"/api/v1/models/by-ref/{owner.username}/tiny-poet"
    )
    assert by_ref.status == 200, by_ref.text
    assert by_ref.json()["slug"] == "tiny-poet"
    # A dot inside a segment is an ordinary character.
    dotted = await raw_request(
        platform.gateway_url, f"/api/v1/models/by-ref/{owner.username}/tiny.poet"
    )
    assert dotted.status == 200, dotted.text
    assert dotted.json()["slug"] == "tiny.poet"
    # An encoded slash in the query is data, forwarded intact: the hub searches for "a/b".
    search = await raw_request(platform.gateway_url, "/api/v1/models?q=a%2Fb&limit=5")
    assert search.status == 200, search.text
    assert [m["slug"] for m in search.json()["items"]] == ["tiny.poet"]
    # Letters needlessly percent-encoded decode to the same path, routed and forwarded alike.
    first, rest = owner.username[0], owner.username[1:]
    profile = await raw_request(platform.gateway_url, f"/api/v1/users/%{ord(first):02x}{rest}")
    assert profile.status == 200, profile.text
    assert profile.json()["username"] == owner.username
    # A trailing slash is not a dot segment: the service answers (here, its own redirect).
    trailing = await raw_request(platform.gateway_url, "/api/v1/models/")
    assert trailing.status < 500
