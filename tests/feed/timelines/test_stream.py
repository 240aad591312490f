"""The live feed over SSE through the gateway: new posts and counts live, resume after a
forced disconnect with Last-Event-ID (nothing lost, nothing twice), private posts withheld."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.factories import user_session
from tests.feed.conftest import publish, ready_model
from tests.feed.timelines.helpers import settle


async def _events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if event:
                yield event
            event = {}
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        event[name] = json.loads(value) if name == "data" else value


class Listener:
    """A live feed connection read in the background."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers
        self.received: list[dict[str, Any]] = []
        self.ready = asyncio.Event()
        self.arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with self.client.stream("GET", "/api/v1/feed/stream", headers=self.headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for event in _events(r):
                if event.get("event") == "ready":
                    self.ready.set()
                else:
                    self.received.append(event)
                    self.arrived.set()

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(15):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()  # a forced disconnect
        await asyncio.gather(self._task, return_exceptions=True)


async def test_a_new_post_arrives_live_and_a_reconnect_resumes_exactly(
    client, worker_ctx, owner, llama
):
    fan = await user_session(client)
    follow = await client.post(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
    assert follow.status_code == 200

    async with Listener(client, fan.headers) as live:
        first = await publish(client, worker_ctx, owner, llama)
        [event] = await live.wait_for(1)
    assert event["event"] == "post"
    assert event["data"]["id"] == first["id"]
    assert event["data"]["status"] == "published"

    # While disconnected: two posts, a like and a reply on the first.
    second = await publish(client, worker_ctx, owner, llama)
    third = await publish(client, worker_ctx, owner, llama)
    like = await client.post(f"/api/v1/posts/{first['id']}/like", headers=fan.headers)
    assert like.status_code == 200
    reply = await client.post(
        f"/api/v1/posts/{first['id']}/replies", json={"text": "hello"}, headers=fan.headers
    )
    assert reply.status_code == 202
    await settle(worker_ctx)

    resumed = Listener(client, {**fan.headers, "Last-Event-ID": event["id"]})
    async with resumed:
        events = await resumed.wait_for(4)
        await asyncio.sleep(0.3)  # nothing more comes
    assert [(e["event"], e["data"].get("id") or e["data"]["post_id"]) for e in events] == [
        ("post", second["id"]),
        ("post", third["id"]),
        ("counts", first["id"]),
        ("counts", first["id"]),
    ]
    assert events[2]["data"]["like_count"] == 1
    assert events[3]["data"] == {"post_id": first["id"], "like_count": 1, "reply_count": 1}
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert event["id"] not in ids


async def test_posts_of_models_the_viewer_may_not_use_never_reach_their_stream(
    client, platform, worker_ctx, owner, llama, tiny_llama_dir
):
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="secret", visibility="private")
    stranger = await user_session(client)
    follow = await client.post(f"/api/v1/users/{owner.username}/follow", headers=stranger.headers)
    assert follow.status_code == 200
    await settle(worker_ctx)

    async with Listener(client, stranger.headers) as live:
        await publish(client, worker_ctx, owner, secret)
        shown = await publish(client, worker_ctx, owner, llama)
        events = await live.wait_for(1)
        await asyncio.sleep(0.3)
    assert [e["data"]["id"] for e in events] == [shown["id"]]


async def test_the_stream_refuses_bad_resume_ids_and_anonymous_callers(client):
    assert (await client.get("/api/v1/feed/stream")).status_code == 401
    fan = await user_session(client)
    bad = await client.get(
        "/api/v1/feed/stream", headers={**fan.headers, "Last-Event-ID": "yesterday"}
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_last_event_id"
