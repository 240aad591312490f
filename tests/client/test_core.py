"""The client's core against the real platform: credentials and transparent refresh, typed
errors, Retry-After, pagination, the sync client, the configured OpenAI client."""

from __future__ import annotations

import ast
import asyncio
import tomllib
import uuid
from pathlib import Path
from typing import Any

import httpx
import llmnet_client
import pytest
from llmnet_client import AsyncClient, Client
from llmnet_client._core import SSEDecoder
from llmnet_client.errors import AuthenticationError, NotFound, RateLimited, ValidationError

from tests.client.conftest import client_for
from tests.factories import PASSWORD, api_key, user_session

PACKAGE = Path(llmnet_client.__file__).parent


def test_the_package_stands_alone() -> None:
    """It imports no platform code, and its version is the one its metadata declares."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"services", "shared", "llmnet", "tests"}, (
                    f"{path.name} imports {name}"
                )
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    assert set(project["dependencies"]) == {"google-crc32c>=1.5", "httpx>=0.27", "rich>=13"}
    assert llmnet_client.__version__ == "0.1.0"
    assert (PACKAGE / "py.typed").is_file()


def test_sse_decoder_handles_split_chunks_comments_and_crlf() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(": ping\r\n\r\nid: 1-0\r\nevent: delta\r")
    events += decoder.feed('\ndata: {"text": "a"}\r\n\r\nid: 2-0\ndata: x\ndata: y\n')
    events += decoder.feed("\n")
    assert [(e.id, e.event, e.data) for e in events] == [
        ("1-0", "delta", '{"text": "a"}'),
        ("2-0", "message", "x\ny"),
    ]
    assert events[0].json() == {"text": "a"}


async def test_login_keeps_tokens_and_errors_are_typed(client, platform) -> None:
    user = await user_session(client)
    async with AsyncClient(platform.gateway_url) as api:
        with pytest.raises(AuthenticationError) as refused:
            await api.auth.login(user.username, "wrong-password-1")
        assert refused.value.status_code == 401
        assert refused.value.code == "invalid_credentials"
        assert refused.value.request_id

        await api.login(user.username, PASSWORD)
        assert (await api.users.me())["username"] == user.username

        missing = str(uuid.uuid4())
        with pytest.raises(NotFound) as error:
            await api.models.get(missing)
        assert error.value.code == "model_not_found"
        assert error.value.detail
        assert error.value.request_id
        assert error.value.request_id in str(error.value)

        with pytest.raises(ValidationError) as invalid:
            await api.api_keys.create("k", scopes=["nonsense"])
        assert invalid.value.code == "validation_error"
        assert invalid.value.fields


async def test_an_expired_access_token_is_refreshed_transparently(client, platform) -> None:
    user = await user_session(client)
    saved: list[Any] = []
    async with AsyncClient(
        platform.gateway_url,
        access_token="not.a-valid.token",
        refresh_token=user.refresh_token,
        on_tokens=saved.append,
    ) as api:
        me = await api.users.me()

        assert me["username"] == user.username
        assert len(saved) == 1
        assert saved[0].refresh_token != user.refresh_token  # rotated
        assert api.credentials.access_token == saved[0].access_token

    # The spent refresh token cannot be used again: the error says to log in.
    async with AsyncClient(
        platform.gateway_url, access_token="not.a-valid.token", refresh_token=user.refresh_token
    ) as stale:
        with pytest.raises(AuthenticationError, match="log in again"):
            await stale.users.me()


async def test_api_keys_authenticate_and_a_revoked_one_is_refused(client, platform) -> None:
    user = await user_session(client)
    async with client_for(platform, user) as api:
        created = await api.api_keys.create("laptop", scopes=["read", "inference"])
        assert created["key"].startswith("llm_")
        assert [k["name"] for k in await api.api_keys.list()] == ["laptop"]

        async with AsyncClient(platform.gateway_url, api_key=created["key"]) as keyed:
            assert (await keyed.users.me())["username"] == user.username
            await api.api_keys.revoke(created["id"])
            with pytest.raises(AuthenticationError) as refused:
                await keyed.users.me()
        assert refused.value.status_code == 401
        assert refused.value.code


async def test_rate_limits_are_retried_after_retry_after_then_raised(client, platform) -> None:
    user = await user_session(client)
    async with platform.extra_gateway(rate_limit_per_minute=1) as limited:
        url = str(limited.base_url)
        async with AsyncClient(url, access_token=user.access_token, max_retries=0) as api:
            await api.users.me()
            with pytest.raises(RateLimited) as limited_error:
                await api.users.me()
    assert limited_error.value.code == "rate_limited"
    assert limited_error.value.retry_after is not None
    assert limited_error.value.retry_after > 0


async def test_retry_after_is_honoured_before_retrying() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "0"}, json={"code": "rate_limited"}),
        httpx.Response(503, headers={"Retry-After": "0"}, json={"code": "unavailable"}),
        httpx.Response(200, json={"username": "ada"}),
    ]
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return answers.pop(0)

    async with AsyncClient(
        "http://llmnet.test", api_key="llm_x", transport=httpx.MockTransport(answer)
    ) as api:
        assert await api.users.me() == {"username": "ada"}
    assert seen == ["/api/v1/users/me"] * 3


async def test_pagination_is_an_iterator_over_every_page(api, owner) -> None:
    for n in range(5):
        await api.models.create(f"Paged {n}", slug=f"paged-{n}")
    refs = [m["ref"] async for m in api.models.list(owner=owner.username, page_size=2)]
    assert sorted(refs) == sorted(f"{owner.username}/paged-{n}" for n in range(5))
    first_three = [m async for m in api.models.list(owner=owner.username, page_size=2, limit=3)]
    assert len(first_three) == 3


async def test_the_sync_client_does_the_same(platform, owner, llama) -> None:
    def work() -> tuple[str, list[str], list[str]]:
        with Client(
            platform.gateway_url,
            access_token=owner.access_token,
            refresh_token=owner.refresh_token,
        ) as api:
            me = api.users.me()["username"]
            refs = [m["ref"] for m in api.models.list(owner=owner.username)]
            conversation = api.conversations.create(
                llama["ref"], parameters={"temperature": 0, "max_tokens": 4}
            )
            events = [e.event for e in api.conversations.stream(conversation["id"], "Hi")]
            return me, refs, events

    me, refs, events = await asyncio.to_thread(work)
    assert me == owner.username
    assert refs == [llama["ref"]]
    assert events[0] == "start"
    assert events[-1] == "done"
    assert "delta" in events


async def test_openai_client_is_configured_for_the_platform(client, platform, owner, llama) -> None:
    key = (await api_key(client, owner, scopes=["read", "inference"]))["key"]

    def work() -> tuple[list[str], str]:
        with Client(platform.gateway_url, api_key=key) as api:
            openai = api.openai_client()
            models = [m.id for m in openai.models.list()]
            completion = openai.chat.completions.create(
                model=llama["ref"],
                messages=[{"role": "user", "content": "Hi"}],
                max_tokens=4,
                temperature=0,
            )
            return models, completion.choices[0].finish_reason

    models, finish = await asyncio.to_thread(work)
    assert llama["ref"] in models
    assert finish in ("stop", "length")
