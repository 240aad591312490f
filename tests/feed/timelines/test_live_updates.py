"""What reaches an open live feed beside new posts: counts after an unlike or a deleted reply
(SSE and WebSocket), each as its change left them, and follow changes applied at once (not at
the next periodic re-read)."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect

from services.feed.timelines import stream
from tests.factories import user_session
from tests.feed.conftest import publish, ready_model
from tests.feed.timelines.helpers import relayed, settle
from tests.feed.timelines.test_stream import Listener
from tests.feed.timelines.test_websocket import _next, _url

# Well under the live feed's periodic re-read of follows: only an announced change is this quick.
PROMPT_SECONDS = 3.0


async def test_an_unlike_and_a_deleted_reply_update_live_counts(client, worker_ctx, owner, llama):
    fan = await user_session(client)
    await client.post(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
    post = await publish(client, worker_ctx, owner, llama)
    path = f"/api/v1/posts/{post['id']}"

    async with Listener(client, fan.headers) as live:
        assert (await client.post(f"{path}/like", headers=fan.headers)).status_code == 200
        assert (await client.delete(f"{path}/like", headers=fan.headers)).status_code == 200
        reply = await client.post(f"{path}/replies", json={"text": "Hi."}, headers=fan.headers)
        assert reply.status_code == 202
        deleted = await client.delete(f"/api/v1/posts/{reply.json()['id']}", headers=fan.headers)
        assert deleted.status_code == 204
        events = await live.wait_for(4)
    assert [e["event"] for e in events] == ["counts"] * 4
    assert [(e["data"]["like_count"], e["data"]["reply_count"]) for e in events] == [
        (1, 0),
        (0, 0),
        (0, 1),
        (0, 0),
    ]


async def test_a_feed_resumed_after_quick_changes_shows_each_as_it_left_the_counts(
    client, worker_ctx, owner, llama
):
    """Read only after every change has committed, each event still shows its own step."""
    fan = await user_session(client)
    await client.post(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
    post = await publish(client, worker_ctx, owner, llama)
    path = f"/api/v1/posts/{post['id']}"
    async with Listener(client, fan.headers) as live:
        await client.post(f"{path}/like", headers=fan.headers)
        [liked] = await live.wait_for(1)

    await client.delete(f"{path}/like", headers=fan.headers)
    reply = await client.post(f"{path}/replies", json={"text": "Hi."}, headers=fan.headers)
    await client.delete(f"/api/v1/posts/{reply.json()['id']}", headers=fan.headers)
    await relayed(worker_ctx)
    async with Listener(client, {**fan.headers, "Last-Event-ID": liked["id"]}) as resumed:
        events = await resumed.wait_for(3)
    assert [(e["data"]["like_count"], e["data"]["reply_count"]) for e in events] == [
        (0, 0),
        (0, 1),
        (0, 0),
    ]


async def test_an_unlike_reaches_the_websocket(client, platform, worker_ctx, owner, llama):
    fan = await user_session(client)
    await client.post(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
    post = await publish(client, worker_ctx, owner, llama)
    protocols = ["llmnet.feed", f"bearer.{fan.access_token}"]
    async with connect(_url(platform), subprotocols=protocols) as socket:  # type: ignore[arg-type]
        await socket.send("{}")
        await _next(socket, "ready")
        await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
        liked = await _next(socket, "counts")
        await client.delete(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
        unliked = await _next(socket, "counts")
    assert liked["data"]["like_count"] == 1
    assert unliked["data"] == {"post_id": post["id"], "like_count": 0, "reply_count": 0}
    assert _order(unliked["id"]) > _order(liked["id"])


def _order(stream_id: str) -> tuple[int, ...]:
    return tuple(map(int, stream_id.split("-")))


async def _arrives(live: Listener, count: int) -> list[dict]:
    async with asyncio.timeout(PROMPT_SECONDS):
        while len(live.received) < count:
            live.arrived.clear()
            await live.arrived.wait()
    return live.received


async def test_follow_changes_apply_to_an_open_stream_at_once(
    client, platform, worker_ctx, owner, tiny_llama_dir
):
    assert stream._REFRESH_SECONDS >= 10 * PROMPT_SECONDS  # what this test tells apart
    poet = await ready_model(platform, owner, tiny_llama_dir, slug="poet")
    other_owner = await user_session(client)
    critic = await ready_model(platform, other_owner, tiny_llama_dir, slug="critic")
    fan = await user_session(client)

    async with Listener(client, fan.headers) as live:
        # Following a person (accounts' event, projected by the feed worker): their models'
        # posts come at once.
        follow = await client.post(f"/api/v1/users/{owner.username}/follow", headers=fan.headers)
        assert follow.status_code == 200
        await settle(worker_ctx)
        await asyncio.sleep(0.5)  # the announcement wakes the stream's read
        first = await publish(client, worker_ctx, owner, poet)
        [event] = await _arrives(live, 1)
        assert event["data"]["id"] == first["id"]

        # Unfollowing: their next post stays away; following a model directly also applies at
        # once (its post is the next event).
        unfollow = await client.delete(
            f"/api/v1/users/{owner.username}/follow", headers=fan.headers
        )
        assert unfollow.status_code in (200, 204)
        await settle(worker_ctx)
        await client.post(f"/api/v1/models/{critic['id']}/follow", headers=fan.headers)
        await asyncio.sleep(0.5)
        await publish(client, worker_ctx, owner, poet)
        shown = await publish(client, worker_ctx, other_owner, critic)
        events = await _arrives(live, 2)
        await asyncio.sleep(0.3)
    assert [e["data"]["id"] for e in events] == [first["id"], shown["id"]]


async def test_a_deleted_post_leaves_the_open_feeds_of_its_followers(
    client, worker_ctx, owner, llama
):
    fan = await user_session(client)
    await client.post(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
    post = await publish(client, worker_ctx, owner, llama)

    async with Listener(client, fan.headers) as live:
        deleted = await client.delete(f"/api/v1/posts/{post['id']}", headers=owner.headers)
        assert deleted.status_code == 204
        [event] = await live.wait_for(1)
    assert event["event"] == "removed"
    assert event["data"] == {"post_id": post["id"]}
