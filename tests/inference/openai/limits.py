"""The platform's two 429s on /v1, provoked for real, for the client libraries' tests.

- The gateway's per-user rate limit (requests per minute): its Retry-After is the rest of the
  minute window, so tests only check that the client raises its rate-limit class with it.
- The inference service's per-user concurrency limit: a second generation while one runs is
  429 with `Retry-After: 1`, short enough to watch a client wait it out and then succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from services.inference.app import create_app as create_inference
from services.inference.config import InferenceSettings
from shared.auth.service_credentials import ServiceName
from shared.testing import serve_app
from tests.conftest import SERVICE_TOKENS
from tests.factories import UserSession, api_key, user_session
from tests.fakes.openai_provider import create_fake_provider


@contextlib.asynccontextmanager
async def rate_limited_gateway(platform: Any, per_minute: int) -> AsyncIterator[str]:
    """A gateway that lets each user make `per_minute` requests a minute; its /v1 URL."""
    async with platform.extra_gateway(rate_limit_per_minute=per_minute) as client:
        yield f"{str(client.base_url).rstrip('/')}/v1"


@dataclass
class Exchange:
    path: str
    arrived: float  # time.monotonic() when the request reached the inference service
    answered: float  # ... and when its status line left
    status: int
    retry_after: str | None


class RecordingApp:
    """The inference app, noting each /v1 request's arrival, status and Retry-After: the
    server's view of a client's retries, whichever library makes them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []
        self.refused = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()

        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
                self.exchanges.append(
                    Exchange(
                        scope["path"],
                        arrived,
                        time.monotonic(),
                        message["status"],
                        headers.get("retry-after"),
                    )
                )
                if message["status"] == 429:
                    self.refused.set()
            await send(message)

        await self.app(scope, receive, noting)

    def waited_after_refusal(self) -> tuple[float, int]:
        """Seconds from the first 429 to the next request's arrival, and that 429's
        Retry-After."""
        index = next(i for i, e in enumerate(self.exchanges) if e.status == 429)
        refusal = self.exchanges[index]
        assert refusal.retry_after is not None
        return self.exchanges[index + 1].arrived - refusal.answered, int(refusal.retry_after)


@dataclass
class Throttled:
    url: str  # the gateway's /v1 URL
    slow_ref: str  # the slow model that holds the slot
    inference: RecordingApp


@contextlib.asynccontextmanager
async def one_generation_per_user(
    platform: Any, client: httpx.AsyncClient, owner: UserSession, hub_limits: Any
) -> AsyncIterator[Throttled]:
    """A gateway in front of an inference service that runs one generation per user at a
    time (its /v1 requests recorded), and a slow model of `owner`'s (an external provider
    streaming a token a second) to hold that one slot with."""
    provider = create_fake_provider(api_key="sk-slow", models=["slow-gpt"])
    provider.state.chunk_delay_seconds = 1.0
    hub_limits(outbound_allow=["127.0.0.1"])
    settings = InferenceSettings(
        **{**platform.common, "service_token": SERVICE_TOKENS[ServiceName.INFERENCE]},
        max_concurrent_per_user=1,
        outbound_allow=["127.0.0.1"],
        tune_seconds=0,
    )
    inference = RecordingApp(create_inference(settings))
    async with (
        serve_app(provider) as provider_url,
        serve_app(inference) as inference_url,
        platform.extra_gateway(inference_url=inference_url) as gateway,
    ):
        registered = await client.post(
            "/api/v1/providers",
            headers=owner.headers,
            json={
                "name": "Slow",
                "base_url": f"{provider_url}/v1",
                "api_key": "sk-slow",
                "models": [{"remote_model": "slow-gpt", "name": "Slow GPT"}],
            },
        )
        assert registered.status_code == 201, registered.text
        yield Throttled(
            f"{str(gateway.base_url).rstrip('/')}/v1", f"{owner.username}/slow-gpt", inference
        )


@dataclass
class HeldGeneration:
    """A streamed completion read up to its first event: its caller's one slot stays taken
    until `stop` hangs up, which cancels it."""

    client: httpx.AsyncClient
    response: httpx.Response
    lines: AsyncIterator[str]

    async def stop(self) -> None:
        await self.response.aclose()
        await self.client.aclose()


async def hold_a_generation(base_url: str, key: str, model: str) -> HeldGeneration:
    client = httpx.AsyncClient(timeout=30)
    request = client.build_request(
        "POST",
        f"{base_url}/completions",
        json={"model": model, "prompt": "a b c d e f g h i j", "max_tokens": 10, "stream": True},
        headers={"Authorization": f"Bearer {key}"},
    )
    response = await client.send(request, stream=True)
    assert response.status_code == 200, await response.aread()
    lines = response.aiter_lines()  # kept: a collected iterator would close the stream
    assert (await anext(lines)).startswith("data: ")
    return HeldGeneration(client, response, lines)


async def inference_key(client: httpx.AsyncClient) -> str:
    """An API key (inference scope) of a new user, whose per-minute count starts at zero."""
    user = await user_session(client)
    return str((await api_key(client, user, scopes=["inference"]))["key"])


async def exhaust(call: Callable[[], Awaitable[object]], per_minute: int) -> None:
    """Call until the rate limit refuses (the caller expects the raise): the limit is
    `per_minute` in each fixed minute window, and one window may end on the way."""
    for _ in range(2 * per_minute + 1):
        await call()
