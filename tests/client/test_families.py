"""The client's calls for every resource family, against the real platform."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from llmnet_client import AsyncClient
from llmnet_client.errors import Conflict, NotFound, ValidationError

from shared.testing import serve_app
from tests.client.conftest import client_for, run_evaluations, run_feed_jobs, servable_files
from tests.factories import user_session
from tests.fakes.openai_provider import create_fake_provider
from tests.feed.notifications.conftest import Notifier, publish_outbox
from tests.models_hub.fine_tunes.conftest import MEMORISE, fine_tune_settings

SHORT = {"temperature": 0, "max_tokens": 4}
LONG = {"temperature": 0, "max_tokens": 220}


async def test_models_and_versions(api, platform, owner, llama) -> None:
    created = await api.models.create(
        "Tiny Poet", description="Writes haiku", tags=["poetry"], visibility="private"
    )
    assert created["ref"] == f"{owner.username}/tiny-poet"
    assert (await api.models.get(created["id"]))["name"] == "Tiny Poet"
    assert (await api.models.get(created["ref"]))["id"] == created["id"]
    updated = await api.models.update(created["id"], description="Writes limericks")
    assert updated["description"] == "Writes limericks"
    assert (await api.models.like(llama["id"]))["liked"] is True
    assert (await api.models.follow(llama["id"]))["following"] is True

    await servable_files(platform, llama)
    versions = await api.versions.list(llama["id"])
    assert [(v["number"], v["status"], v["is_active"]) for v in versions] == [(1, "ready", True)]
    version = await api.versions.get(llama["id"], versions[0]["id"])
    config = await api.versions.download(llama["id"], version["id"], "config.json")
    assert json.loads(config)["model_type"] == "llama"
    assert await api.models.lineage(llama["id"])

    await api.models.delete(created["id"])
    with pytest.raises(NotFound):
        await api.models.get(created["id"])


async def test_providers(api, hub_limits) -> None:
    hub_limits(outbound_allow=["127.0.0.1"])
    app = create_fake_provider(api_key="sk-secret", models=["fake-gpt", "fake-mini"])
    async with serve_app(app) as url:
        provider = await api.providers.create(
            "Fake AI",
            f"{url}/v1",
            api_key="sk-secret",
            models=[{"remote_model": "fake-gpt", "name": "Fake GPT"}],
        )
        assert provider["has_api_key"] is True
        assert (await api.providers.test(provider["id"]))["models"] == ["fake-gpt", "fake-mini"]
        added = await api.providers.add_model(provider["id"], "fake-mini")
        assert added["remote_model"] == "fake-mini"
        assert [p["id"] for p in await api.providers.list()] == [provider["id"]]
        renamed = await api.providers.update(provider["id"], name="Renamed")
        assert renamed["name"] == "Renamed"
        await api.providers.delete(provider["id"])
        assert await api.providers.list() == []


async def test_conversations_send_stream_reattach_regenerate_and_stop(api, llama) -> None:
    conversation = await api.conversations.create(llama["ref"], title="Tea", parameters=SHORT)
    whole = await api.conversations.send(conversation["id"], "Hello")
    assert whole["message"]["status"] == "complete"

    events = [e async for e in api.conversations.stream(conversation["id"], "Again")]
    assert events[0].event == "start"
    assert events[-1].event == "done"
    answer = events[0].json()["message"]["id"]
    text = "".join(e.json()["text"] for e in events if e.event == "delta")
    assert events[-1].json()["content"] == text

    # Re-attach after the first event: the rest, exactly.
    rest = [
        e
        async for e in api.conversations.attach(
            conversation["id"], answer, last_event_id=events[0].id
        )
    ]
    assert [(e.id, e.data) for e in rest] == [(e.id, e.data) for e in events[1:]]

    again = await api.conversations.regenerate(conversation["id"], answer, parameters={"seed": 3})
    assert again["message"]["parent_id"] == events[0].json()["message"]["parent_id"]
    streamed = [
        e.event async for e in api.conversations.regenerate_stream(conversation["id"], answer)
    ]
    assert streamed[0] == "start"
    assert streamed[-1] == "done"

    # Stop a long answer after its first words: cancelled, its text kept.
    stopped: dict[str, Any] = {}
    final: dict[str, Any] = {}
    started = ""
    async for event in api.conversations.stream(
        conversation["id"], "Tell me a long story", parameters=LONG
    ):
        if event.event == "start":
            started = event.json()["message"]["id"]
        elif event.event == "delta" and not stopped:
            stopped = await api.conversations.stop(conversation["id"], started)
        elif event.event == "done":
            final = event.json()
    assert stopped["status"] in ("cancelled", "complete")
    assert final["id"] == started
    assert final["status"] == stopped["status"]

    listed = [c["id"] async for c in api.conversations.list()]
    assert listed == [conversation["id"]]
    markdown = await api.conversations.export(conversation["id"], format="markdown")
    assert "Tea" in markdown
    assert (await api.conversations.get(conversation["id"]))["title"] == "Tea"
    await api.conversations.delete(conversation["id"])
    await api.conversations.restore(conversation["id"])


async def test_usage(api, llama) -> None:
    conversation = await api.conversations.create(llama["ref"], parameters=SHORT)
    await api.conversations.send(conversation["id"], "Hello")
    rows = [row async for row in api.usage.ledger()]
    assert len(rows) == 1
    assert rows[0]["completion_tokens"] >= 1
    page = await api.usage.page()
    assert page["totals"]
    quota = await api.usage.quota()
    assert "used_today" in quota or quota


async def test_posts_and_timelines_with_the_live_stream(
    api, platform, client, worker_ctx, owner, llama
) -> None:
    await api.models.follow(llama["id"])
    live = api.feed.live()
    ready = await anext(live)
    assert ready.event == "ready"

    post = await api.posts.create(llama["ref"], "Foxes?", max_tokens=6, temperature=0)
    assert post["status"] == "generating"
    assert await run_feed_jobs(worker_ctx) == ["published"]
    async with asyncio.timeout(20):
        event = await anext(live)
        while event.event != "post":
            event = await anext(live)
    assert event.json()["id"] == post["id"]
    await live.aclose()

    published = await api.posts.get(post["id"])
    assert published["status"] == "published"
    reply = await api.posts.reply(post["id"], text="I reply as myself.")
    assert reply["parent_id"] == post["id"]
    thread = [p["id"] async for p in api.posts.thread(post["id"])]
    assert thread == [post["id"], reply["id"]]
    assert (await api.posts.like(post["id"]))["like_count"] == 1

    # Resume after the `ready` event: the post again, nothing lost.
    resumed = api.feed.live(last_event_id=ready.id)
    async with asyncio.timeout(20):
        event = await anext(resumed)
        while event.event != "post":
            event = await anext(resumed)
    assert event.json()["id"] == post["id"]
    await resumed.aclose()

    for listing in (api.feed.home(), api.feed.public(), api.feed.model(llama["id"])):
        assert [p["id"] async for p in listing] == [post["id"]]
    assert [p["id"] async for p in api.feed.user(owner.id)] == [post["id"]]
    await api.posts.unlike(post["id"])
    await api.posts.delete(reply["id"])


async def test_notifications(api, platform, client, worker_ctx, owner) -> None:
    fan = await user_session(client)
    async with client_for(platform, fan) as fan_api:
        await fan_api.users.follow(owner.username)
    notifier = Notifier(platform, {"feed": worker_ctx["feed"], "events_redis": platform.redis})
    await publish_outbox(platform)
    await notifier.deliver()

    items = [n async for n in api.notifications.list(unread=True)]
    assert [(n["kind"], n["actor_username"]) for n in items] == [("user_followed", fan.username)]
    assert (await api.notifications.unread_count())["unread"] == 1
    live = api.notifications.live(last_event_id="0-0")
    async with asyncio.timeout(20):
        event = await anext(live)
    await live.aclose()
    assert event.event == "notification"
    assert event.json()["id"] == items[0]["id"]
    read = await api.notifications.read(items[0]["id"])
    assert read["read_at"] is not None
    assert (await api.notifications.read_all())["marked"] == 0
    assert (await api.notifications.set_preferences(["post_liked"]))["muted"] == ["post_liked"]
    assert (await api.notifications.preferences())["muted"] == ["post_liked"]


async def test_fine_tunes_and_their_progress(platform, client, tmp_path) -> None:
    from arq.worker import Worker

    from services.models_hub.finetune_worker import settings_for
    from tests.inference.conftest import ready_model
    from tests.models_hub.conftest import developer
    from tests.models_hub.tiny_models import build_tiny_llama

    tuner = await developer(client, "tuner")
    base = await ready_model(
        platform, tuner, build_tiny_llama(tmp_path / "base"), slug="base", visibility="private"
    )
    training = tmp_path / "train.jsonl"
    training.write_bytes(MEMORISE)
    async with client_for(platform, tuner) as api:
        job = await api.fine_tunes.create(
            base["id"], training, method="full", epochs=1, batch_size=4, max_seq_length=64
        )
        assert job["status"] == "queued"
        assert [j["id"] async for j in api.fine_tunes.list()] == [job["id"]]
        assert [j["id"] async for j in api.fine_tunes.list(model_id=base["id"])] == [job["id"]]

        options = settings_for(fine_tune_settings(platform))
        options.pop("cron_jobs")
        worker = Worker(**options, burst=True, poll_delay=0.05, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()

        events = [e async for e in api.fine_tunes.events(job["id"])]
        assert events[0].event == "status"
        assert "progress" in [e.event for e in events]
        assert events[-1].json()["status"] == "succeeded"
        done = await api.fine_tunes.get(job["id"])
        assert done["status"] == "succeeded"
        with pytest.raises(Conflict):
            await api.fine_tunes.cancel(job["id"])


async def test_evaluations(api, inference_ctx, llama) -> None:
    sets = await api.evaluations.prompt_sets()
    assert "consistency" in {s["name"] for s in sets}
    queued = await api.evaluations.create(
        llama["ref"],
        prompt_sets=["consistency"],
        sampling={"temperature": 0.8, "max_tokens": 8, "seed": 1},
        repeats=2,
    )
    assert queued["status"] == "queued"
    assert await run_evaluations(inference_ctx) == ["completed"]
    events = [e async for e in api.evaluations.events(queued["id"])]
    assert events[-1].event == "done"
    evaluation = await api.evaluations.get(queued["id"])
    assert evaluation["status"] == "completed"
    assert evaluation["report"]["consistency"]
    assert [e["id"] async for e in api.evaluations.list(model_id=llama["id"])] == [queued["id"]]
    csv = await api.evaluations.export(queued["id"], format="csv")
    assert csv.startswith("section,item,metric,value")
    with pytest.raises(ValidationError) as same:
        await api.evaluations.compare(queued["id"], queued["id"])
    assert same.value.code == "same_evaluation"


async def test_an_async_client_without_credentials_reads_public_things(platform, llama) -> None:
    async with AsyncClient(platform.gateway_url) as anonymous:
        assert (await anonymous.models.get(llama["ref"]))["id"] == llama["id"]
        assert [m["ref"] async for m in anonymous.models.list()] == [llama["ref"]]


class _CutAfterFirstEvent(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = b""
        async for chunk in self._inner:
            seen += chunk
            if b"\n\n" in seen:
                yield seen[: seen.index(b"\n\n") + 2]
                raise httpx.ReadError("connection cut by the test")
            # (nothing yielded until a whole first event arrived)

    async def aclose(self) -> None:
        await self._inner.aclose()


class CutFirstStream(httpx.AsyncBaseTransport):
    """The first streamed answer's connection breaks right after its first event."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.cut = False
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(f"{request.method} {request.url.path}")
        response = await self._inner.handle_async_request(request)
        if not self.cut and request.headers.get("accept") == "text/event-stream":
            self.cut = True
            assert isinstance(response.stream, httpx.AsyncByteStream)
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                stream=_CutAfterFirstEvent(response.stream),
                request=request,
            )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_dropped_answer_stream_reattaches_where_it_left_off(platform, owner, llama) -> None:
    transport = CutFirstStream()
    async with client_for(platform, owner, transport=transport) as api:
        conversation = await api.conversations.create(llama["ref"], parameters=SHORT)
        events = [e async for e in api.conversations.stream(conversation["id"], "Hello")]
        ids = [e.id for e in events]
        assert len(ids) == len(set(ids))  # nothing twice
        assert events[0].event == "start"
        assert events[-1].event == "done"
        text = "".join(e.json()["text"] for e in events if e.event == "delta")
        assert events[-1].json()["content"] == text  # nothing lost
    answer = events[0].json()["message"]["id"]
    assert transport.paths[-1].endswith(f"/messages/{answer}/stream")
