"""Bad input gets a 422 naming the field, through the gateway, where it once got a 500; and the
published document states the rules validation applies."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.fields import NUL_FREE_PATTERN
from shared.testing import serve_app
from tests.conftest import Platform
from tests.factories import UserSession, admin_session, api_key, user_session
from tests.fakes.openai_provider import create_fake_provider

NUL = "a\x00b"
SOME_ID = "00000000-0000-4000-8000-000000000000"


async def developer(client: httpx.AsyncClient) -> UserSession:
    user = await user_session(client)
    response = await client.patch(
        "/api/v1/users/me", json={"is_model_developer": True}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return user


def assert_refused(response: httpx.Response, field: str, code: str = "validation_error") -> str:
    """A 422 whose `fields` name `field`; returns that field's message. On the OpenAI-compatible
    API: OpenAI's 400, whose `message` names every field (`param`, the first)."""
    if response.request.url.path.startswith("/v1/"):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", code)
        assert error["param"] is not None
        assert f"{field}: " in error["message"], error
        return str(error["message"]).split(f"{field}: ", 1)[1].split("; ")[0]
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == code
    messages = {f["field"]: f["message"] for f in body.get("fields", [])}
    assert field in messages, body
    return messages[field]


# (method, path, request arguments, the field the error names). `{model}` is a model of the
# caller's; ids that exist nowhere are fine too: bodies are validated before any lookup.
NUL_INPUTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("GET", "/api/v1/models", {"params": {"q": NUL}}, "q"),
    ("GET", "/api/v1/models", {"params": {"tag": NUL}}, "tag"),
    ("GET", "/api/v1/models", {"params": {"owner": NUL}}, "owner"),
    ("POST", "/api/v1/auth/login", {"json": {"username": NUL, "password": "x"}}, "username"),
    ("POST", "/api/v1/auth/login", {"data": {"username": NUL, "password": "x"}}, "username"),
    ("POST", "/api/v1/auth/login", {"json": {"username": "ada", "password": NUL}}, "password"),
    (
        "POST",
        "/api/v1/auth/register",
        {"json": {"username": "ada_n", "email": "n@example.com", "password": "p4ss" + NUL * 4}},
        "password",
    ),
    (
        "POST",
        "/api/v1/auth/register",
        {
            "json": {
                "username": "ada_n",
                "email": "n@example.com",
                "password": "analytical-engine-1",
                "display_name": NUL,
            }
        },
        "display_name",
    ),
    ("POST", "/api/v1/auth/refresh", {"json": {"refresh_token": NUL}}, "refresh_token"),
    ("PATCH", "/api/v1/users/me", {"json": {"display_name": NUL}}, "display_name"),
    ("PATCH", "/api/v1/users/me", {"json": {"bio": NUL}}, "bio"),
    ("POST", "/api/v1/users/me/api-keys", {"json": {"name": NUL}}, "name"),
    ("POST", "/api/v1/models", {"json": {"name": NUL}}, "name"),
    ("POST", "/api/v1/models", {"json": {"name": "x", "description": NUL}}, "description"),
    ("POST", "/api/v1/models", {"json": {"name": "x", "card": NUL}}, "card"),
    ("POST", "/api/v1/models", {"json": {"name": "x", "license": NUL}}, "license"),
    ("POST", "/api/v1/models", {"json": {"name": "x", "system_prompt": NUL}}, "system_prompt"),
    ("POST", "/api/v1/models", {"json": {"name": "x", "tags": [NUL]}}, "tags.0"),
    (
        "POST",
        "/api/v1/models",
        {"json": {"name": "x", "default_params": {"stop": [NUL]}}},
        "default_params.stop.0",
    ),
    ("PATCH", "/api/v1/models/{model}", {"json": {"name": NUL}}, "name"),
    ("PATCH", "/api/v1/models/{model}", {"json": {"card": NUL}}, "card"),
    ("POST", "/api/v1/models/{model}/grants", {"json": {"username": NUL}}, "username"),
    ("POST", "/api/v1/providers", {"json": {"name": NUL, "base_url": "https://a.io"}}, "name"),
    ("POST", "/api/v1/providers", {"json": {"name": "p", "base_url": NUL}}, "base_url"),
    (
        "POST",
        "/api/v1/providers",
        {"json": {"name": "p", "base_url": "https://a.io", "api_key": NUL}},
        "api_key",
    ),
    (
        "POST",
        "/api/v1/providers",
        {"json": {"name": "p", "base_url": "https://a.io", "models": [{"remote_model": NUL}]}},
        "models.0.remote_model",
    ),
    ("PATCH", f"/api/v1/providers/{SOME_ID}", {"json": {"name": NUL}}, "name"),
    (
        "POST",
        f"/api/v1/providers/{SOME_ID}/models",
        {"json": {"remote_model": "m", "name": NUL}},
        "name",
    ),
    (
        "POST",
        "/v1/chat/completions",
        {"json": {"model": "a/b", "messages": [{"role": "user", "content": NUL}]}},
        "messages.0.content",
    ),
    ("POST", "/v1/chat/completions", {"json": {"model": NUL, "messages": []}}, "model"),
    ("POST", "/v1/completions", {"json": {"model": "a/b", "prompt": NUL}}, "prompt"),
    ("POST", "/v1/completions", {"json": {"model": "a/b", "prompt": "x", "stop": NUL}}, "stop"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    NUL_INPUTS,
    ids=[f"{m} {p} {f}" for m, p, _, f in NUL_INPUTS],
)
async def test_nul_in_text_is_refused_naming_the_field(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    dev = await developer(client)
    if "{model}" in path:
        created = await client.post("/api/v1/models", json={"name": "Poet"}, headers=dev.headers)
        assert created.status_code == 201, created.text
        path = path.replace("{model}", created.json()["id"])
    response = await client.request(method, path, headers=dev.headers, **kwargs)
    message = assert_refused(response, field)
    # Tags and usernames have patterns of their own, which leave NUL out already.
    assert "NUL" in message or "should match pattern" in message


ADMIN_NUL_INPUTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("GET", "/api/v1/admin/users", {"params": {"q": NUL}}, "q"),
    ("GET", "/api/v1/admin/audit", {"params": {"action": NUL}}, "action"),
    ("POST", f"/api/v1/admin/users/{SOME_ID}/ban", {"json": {"reason": NUL}}, "reason"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    ADMIN_NUL_INPUTS,
    ids=[f"{m} {p} {f}" for m, p, _, f in ADMIN_NUL_INPUTS],
)
async def test_nul_in_admin_inputs_is_refused_naming_the_field(
    client: httpx.AsyncClient,
    platform: Platform,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    admin = await admin_session(client, platform)
    response = await client.request(method, path, headers=admin.headers, **kwargs)
    assert "NUL" in assert_refused(response, field)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/models/by-ref/a%00b/poet", "owner"),
        (f"/api/v1/models/{SOME_ID}/versions/{SOME_ID}/files/a%00b", "name"),
    ],
)
async def test_nul_in_a_path_parameter_is_refused_by_the_service(
    platform: Platform, path: str, field: str
) -> None:
    # The gateway refuses any encoded control character in a path first (400 invalid_path);
    # the service, reached directly, names the parameter.
    async with httpx.AsyncClient(base_url=platform.service_urls["models_hub"]) as hub:
        response = await hub.get(path)
    assert_refused(response, field)


async def test_a_quota_past_what_the_column_holds_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    admin = await admin_session(client, platform)
    user = await user_session(client)
    response = await client.put(
        f"/api/v1/usage/quotas/{user.id}", json={"daily_tokens": 2**63}, headers=admin.headers
    )
    assert "less than or equal to" in assert_refused(response, "daily_tokens")


async def test_the_largest_documented_quota_is_kept(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    admin = await admin_session(client, platform)
    user = await user_session(client)
    response = await client.put(
        f"/api/v1/usage/quotas/{user.id}",
        json={"daily_tokens": 2**53 - 1},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["daily_tokens"] == 2**53 - 1


@pytest.mark.parametrize("value", [0, 1, None, "true"])
async def test_is_model_developer_takes_only_true_or_false(
    client: httpx.AsyncClient, value: Any
) -> None:
    user = await user_session(client)
    response = await client.patch(
        "/api/v1/users/me", json={"is_model_developer": value}, headers=user.headers
    )
    assert_refused(response, "is_model_developer")


async def test_stream_takes_only_true_or_false(client: httpx.AsyncClient) -> None:
    user = await user_session(client)
    response = await client.post(
        "/v1/completions",
        json={"model": "a/b", "prompt": "x", "stream": 0},
        headers=user.headers,
    )
    assert_refused(response, "stream")


@pytest.mark.parametrize("field", ["max_tokens", "top_k", "seed"])
async def test_a_boolean_is_not_an_integer(client: httpx.AsyncClient, field: str) -> None:
    user = await user_session(client)
    response = await client.post(
        "/v1/completions", json={"model": "a/b", "prompt": "x", field: True}, headers=user.headers
    )
    assert_refused(response, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": []}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": "x", "stop": ["a", ""]}, "stop.1"),
        ({"prompt": "x", "seed": -1}, "seed"),
        ({"prompt": "x", "seed": 2**53}, "seed"),
    ],
)
async def test_generation_parameters_out_of_their_documented_range(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    user = await user_session(client)
    response = await client.post(
        "/v1/completions", json={"model": "a/b", **body}, headers=user.headers
    )
    assert_refused(response, field)


async def test_null_name_or_visibility_of_a_model_is_refused(client: httpx.AsyncClient) -> None:
    dev = await developer(client)
    created = await client.post("/api/v1/models", json={"name": "Poet"}, headers=dev.headers)
    path = f"/api/v1/models/{created.json()['id']}"
    for field in ("name", "visibility"):
        response = await client.patch(path, json={field: None}, headers=dev.headers)
        assert "not null" in assert_refused(response, field)


@pytest.mark.parametrize(
    "expires_at", ["2000-01-01T00:00:00Z", "2999-01-01T00:00:00", "9999-12-31T23:00:00-05:00", "5"]
)
async def test_an_api_key_expires_only_at_a_future_moment_with_a_timezone(
    client: httpx.AsyncClient, expires_at: str
) -> None:
    user = await user_session(client)
    response = await client.post(
        "/api/v1/users/me/api-keys",
        json={"name": "k", "expires_at": expires_at},
        headers=user.headers,
    )
    assert_refused(response, "expires_at")


async def test_usage_since_a_moment_past_year_9999_in_utc_is_refused(
    client: httpx.AsyncClient,
) -> None:
    user = await user_session(client)
    response = await client.get(
        "/api/v1/usage", params={"since": "0001-01-01T00:00:00+05:00"}, headers=user.headers
    )
    assert_refused(response, "since")


# Fixed, not random: parallel test workers must collect the same test ids.
UNKNOWN_ID = "5ee548e0-a2c1-4209-8aa7-28dd06540c2f"


def forged(*values: Any) -> str:
    raw = json.dumps(list(values)).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("path", "cursor"),
    [
        ("/api/v1/users/{me}/followers", forged("2026-01-01T00:00:00+00:00", 5)),
        ("/api/v1/users/{me}/followers", forged("2026-01-01T00:00:00", UNKNOWN_ID)),
        ("/api/v1/models", forged(True, UNKNOWN_ID)),
        ("/api/v1/models?sort=most_liked", forged(2**40, UNKNOWN_ID)),
        ("/api/v1/models?sort=trending", forged(2**70)),
        ("/api/v1/usage", forged(2**64)),
        ("/api/v1/usage", forged("12")),
    ],
)
async def test_a_forged_cursor_is_refused(
    client: httpx.AsyncClient, path: str, cursor: str
) -> None:
    user = await user_session(client)
    separator = "&" if "?" in path else "?"
    response = await client.get(
        f"{path.replace('{me}', user.username)}{separator}cursor={cursor}", headers=user.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("path", "cursor"),
    [("/api/v1/admin/audit", forged("not a number")), ("/api/v1/admin/users", forged(NUL))],
)
async def test_a_forged_admin_cursor_is_refused(
    client: httpx.AsyncClient, platform: Platform, path: str, cursor: str
) -> None:
    admin = await admin_session(client, platform)
    response = await client.get(path, params={"cursor": cursor}, headers=admin.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize("cursor", ["a+b/c=", NUL, "W10!"])
async def test_a_cursor_outside_url_safe_base64_is_refused(
    client: httpx.AsyncClient, cursor: str
) -> None:
    response = await client.get("/api/v1/models", params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/v1/models/{id}", "DELETE, GET, PATCH"),
        ("OPTIONS", "/api/v1/users/me", "GET, PATCH"),
        ("PUT", "/api/v1/users/me/api-keys", "GET, POST"),
        ("GET", "/api/v1/users/someone/follow", "DELETE, POST"),
    ],
)
async def test_405_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    user = await user_session(client)
    response = await client.request(method, path.replace("{id}", SOME_ID), headers=user.headers)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert allow in response.json()["detail"]


@pytest.fixture
async def loopback_provider(platform: Platform) -> AsyncIterator[str]:
    """A fake OpenAI-compatible provider on loopback, which the hub may reach for one test."""
    hub = platform.apps["models_hub"]
    original = hub.state.hub
    settings = original.settings.model_copy(update={"outbound_allow": ["127.0.0.1"]})
    hub.state.hub = dataclasses.replace(original, settings=settings)
    try:
        async with serve_app(create_fake_provider(models=[LONG_MODEL_ID])) as url:
            yield url
    finally:
        hub.state.hub = original


LONG_MODEL_ID = "m" * 200


async def test_a_long_provider_model_id_names_the_model_by_its_first_100_characters(
    client: httpx.AsyncClient, loopback_provider: str
) -> None:
    dev = await developer(client)
    key = (await api_key(client, dev))["key"]
    response = await client.post(
        "/api/v1/providers",
        json={
            "name": "Long",
            "base_url": f"{loopback_provider}/v1",
            "models": [{"remote_model": LONG_MODEL_ID}],
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201, response.text
    model_id = response.json()["model_ids"][0]
    model = await client.get(f"/api/v1/models/{model_id}", headers=dev.headers)
    assert model.json()["name"] == LONG_MODEL_ID[:100]


def _property(document: dict[str, Any], component: str, name: str) -> dict[str, Any]:
    prop: dict[str, Any] = document["components"]["schemas"][component]["properties"][name]
    return prop


def _branches(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]


@pytest.mark.parametrize(
    ("component", "name", "expected"),
    [
        ("RegisterRequest", "password", {"minLength": 10, "maxLength": 128}),
        ("ChatCompletionRequest", "max_tokens", {"minimum": 1, "maximum": 4096}),
        ("CompletionRequest", "max_completion_tokens", {"minimum": 1, "maximum": 4096}),
        ("CompletionRequest", "seed", {"minimum": 0, "maximum": 2**53 - 1}),
        ("QuotaUpdate", "daily_tokens", {"minimum": 0, "maximum": 2**53 - 1}),
        ("ModelCreate", "description", {"pattern": NUL_FREE_PATTERN, "maxLength": 1000}),
    ],
)
async def test_the_document_states_the_bounds(
    client: httpx.AsyncClient, component: str, name: str, expected: dict[str, Any]
) -> None:
    document = (await client.get("/openapi.json")).json()
    (schema,) = _branches(_property(document, component, name))
    assert expected.items() <= schema.items()


async def test_the_document_states_what_a_stop_and_a_prompt_may_be(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    one, many = _branches(_property(document, "ChatCompletionRequest", "stop"))
    assert one["minLength"] == 1
    assert many["maxItems"] == 4
    assert many["items"]["minLength"] == 1
    _, prompts = _branches(_property(document, "CompletionRequest", "prompt"))
    assert (prompts["minItems"], prompts["maxItems"]) == (1, 1)


@pytest.mark.parametrize(
    ("component", "name", "kind"),
    [
        ("UserUpdate", "is_model_developer", "boolean"),
        ("ModelUpdate", "name", "string"),
        ("ModelUpdate", "visibility", "string"),
        ("ProviderUpdate", "base_url", "string"),
    ],
)
async def test_the_document_does_not_offer_null_where_null_is_refused(
    client: httpx.AsyncClient, component: str, name: str, kind: str
) -> None:
    document = (await client.get("/openapi.json")).json()
    prop = _property(document, component, name)
    assert "anyOf" not in prop
    assert "default" not in prop
    if ref := prop.get("$ref"):  # an enum: its own component, never null either
        prop = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert prop["type"] == kind


async def test_the_document_states_the_tag_and_cursor_formats(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    (tags,) = _branches(_property(document, "ModelCreate", "tags"))
    assert tags["items"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9-]{0,31}$"
    parameters = document["paths"]["/api/v1/models"]["get"]["parameters"]
    (cursor,) = [p for p in parameters if p["name"] == "cursor"]
    (schema,) = _branches(cursor["schema"])
    assert schema["pattern"] == "^[A-Za-z0-9_-]*$"
