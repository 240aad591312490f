"""Whether a viewer may see a model's posts: many viewers asking about one model at once (a
post reaching every open live feed) ask the model hub once; a private model is still asked
about per viewer, and only its users see it."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from services.feed.timelines import visibility
from shared.auth.identity import Identity, scopes_for
from tests.feed.conftest import ready_model


def _viewer(n: int, user_id: uuid.UUID | None = None) -> Identity:
    return Identity(
        user_id=user_id or uuid.uuid4(),
        username=f"viewer{n}",
        role="user",
        scopes=scopes_for("user"),
        auth_method="jwt",
    )


@pytest.fixture
def hub_calls(platform, monkeypatch) -> list[tuple[uuid.UUID, Any]]:
    """Every question the feed puts to the model hub, as it is put (the real hub answers)."""
    models = platform.apps["feed"].state.feed.models
    calls: list[tuple[uuid.UUID, Any]] = []
    ask = models.access_by_id

    async def counted(model_id: uuid.UUID, caller: Identity | None) -> Any:
        calls.append((model_id, caller))
        return await ask(model_id, caller)

    ask_open = models.open_models

    async def counted_open(model_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        # A question about several models at once: one entry each, without a viewer.
        calls.extend((model_id, None) for model_id in model_ids)
        return await ask_open(model_ids)

    monkeypatch.setattr(models, "access_by_id", counted)
    monkeypatch.setattr(models, "open_models", counted_open)
    monkeypatch.setattr(visibility, "_known", {})
    return calls


async def test_a_public_model_is_asked_about_once_however_many_viewers_ask_at_once(
    platform, llama, hub_calls
):
    ctx = platform.apps["feed"].state.feed
    model = uuid.UUID(llama["id"])
    viewers = [_viewer(n) for n in range(50)]
    answers = await asyncio.gather(*(visibility.visible_models(ctx, v, {model}) for v in viewers))
    assert answers == [{model}] * 50
    assert hub_calls == [(model, None)]  # one question, without a viewer
    # Remembered for visibility_cache_seconds: the next post asks nothing.
    assert await visibility.visible_models(ctx, _viewer(51), {model}) == {model}
    assert len(hub_calls) == 1


async def test_a_private_model_is_asked_about_per_viewer_and_seen_only_by_its_users(
    platform, owner, tiny_llama_dir, hub_calls
):
    ctx = platform.apps["feed"].state.feed
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="hidden", visibility="private")
    model = uuid.UUID(secret["id"])
    me = _viewer(0, uuid.UUID(owner.id))
    strangers = [_viewer(n) for n in range(1, 6)]
    answers = await asyncio.gather(
        *(visibility.visible_models(ctx, v, {model}) for v in [me, *strangers])
    )
    assert answers == [{model}] + [set()] * 5
    # One question without a viewer (is it open to all? no), then one per viewer.
    assert [c for _, c in hub_calls if c is None] == [None]
    assert {c.user_id for _, c in hub_calls if c is not None} == {
        v.user_id for v in [me, *strangers]
    }
    assert await visibility.visible_models(ctx, None, {model}) == set()


async def test_a_just_expired_answer_is_given_at_once_while_one_question_refreshes_it(
    platform, llama, hub_calls
):
    ctx = platform.apps["feed"].state.feed
    model = uuid.UUID(llama["id"])
    assert ctx.settings.visibility_cache_seconds > 1
    # Remembered (wrongly, as it happens) as private, and expired a moment ago.
    visibility._known[model] = (False, time.monotonic() - 0.5)
    readers = [visibility.visible_models(ctx, None, {model}) for _ in range(3)]
    assert await asyncio.gather(*readers) == [set()] * 3  # nobody waited on the hub
    await asyncio.gather(*list(visibility._probes.values()))
    assert hub_calls == [(model, None)]  # one refresh for all three
    # The refreshed answer (the model is public) is the one given now, without asking.
    assert await visibility.visible_models(ctx, None, {model}) == {model}
    assert hub_calls == [(model, None)]


async def test_an_answer_expired_longer_than_the_setting_ago_is_asked_anew_first(
    platform, llama, hub_calls
):
    ctx = platform.apps["feed"].state.feed
    model = uuid.UUID(llama["id"])
    ttl = ctx.settings.visibility_cache_seconds
    visibility._known[model] = (False, time.monotonic() - ttl - 0.5)
    assert await visibility.visible_models(ctx, None, {model}) == {model}
    assert hub_calls == [(model, None)]


async def test_a_listing_asks_about_all_its_models_in_one_question(
    platform, owner, llama, tiny_llama_dir, hub_calls, monkeypatch
):
    ctx = platform.apps["feed"].state.feed
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="hushed", visibility="private")
    public, private = uuid.UUID(llama["id"]), uuid.UUID(secret["id"])
    questions: list[list[uuid.UUID]] = []
    ask = ctx.models.open_models

    async def recorded(model_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        questions.append(sorted(model_ids))
        return await ask(model_ids)

    monkeypatch.setattr(ctx.models, "open_models", recorded)
    stranger = _viewer(1)
    assert await visibility.visible_models(ctx, stranger, {public, private}) == {public}
    assert questions == [sorted([public, private])]
    # The private model is then asked about for the viewer alone.
    assert [(m, c.user_id) for m, c in hub_calls if c is not None] == [(private, stranger.user_id)]
