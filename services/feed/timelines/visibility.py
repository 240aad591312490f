"""Which posts of a listing a viewer may see: a model's posts only for those who may use it.

The hub's access check answers per model; a listing asks once per distinct model, all at
once. Whether a model is open to everyone (public or unlisted) is asked without a viewer, one
question at a time per model, and remembered for `visibility_cache_seconds`, so hot listings
and live feeds do not ask the hub on every read. For as long again after that, a reader gets
the remembered answer at once while one question refreshes it: with thousands of models, a
read would otherwise wait on the hub for nearly every page. So a model made private leaves
listings within twice that setting. Whether a viewer may see a private model is asked for
each viewer, every time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence

from services.feed.deps import FeedContext
from services.feed.models import Post
from shared.auth.identity import Identity
from shared.models_client import ModelNotFound

# model id -> (whether it is open, i.e. not private; until when that is remembered)
_known: dict[uuid.UUID, tuple[bool, float]] = {}
_probes: dict[uuid.UUID, asyncio.Task[bool]] = {}  # the one question in flight per model
_REMEMBERED_MAX = 50_000


async def _probe(ctx: FeedContext, model_id: uuid.UUID) -> bool:
    try:
        await ctx.models.access_by_id(model_id, None)
        is_open = True
    except ModelNotFound:
        is_open = False  # private (or gone): each viewer is asked about
    if ctx.settings.visibility_cache_seconds > 0:
        if len(_known) >= _REMEMBERED_MAX:
            _known.clear()  # entries live seconds: starting over costs a few hub calls
        _known[model_id] = (is_open, time.monotonic() + ctx.settings.visibility_cache_seconds)
    return is_open


def _question(ctx: FeedContext, model_id: uuid.UUID) -> asyncio.Task[bool]:
    """The one question in flight about the model, put now if none is."""
    probe = _probes.get(model_id)
    if probe is None:
        probe = _probes[model_id] = asyncio.create_task(_probe(ctx, model_id))
        probe.add_done_callback(_settled(model_id))
    return probe


def _settled(model_id: uuid.UUID) -> Callable[[asyncio.Task[bool]], None]:
    def done(probe: asyncio.Task[bool]) -> None:
        _probes.pop(model_id, None)
        if not probe.cancelled():
            probe.exception()  # a refresh nobody waited on failed: the next read asks again

    return done


async def _is_open(ctx: FeedContext, model_id: uuid.UUID) -> bool:
    """Whether anyone may see the model's posts. Asked of the hub once at a time per model:
    a post reaching 200 live feeds as the remembered answer runs out costs one call, not 200."""
    known = _known.get(model_id)
    if known is not None:
        is_open, until = known
        now = time.monotonic()
        if until > now:
            return is_open
        if until + ctx.settings.visibility_cache_seconds > now:
            _question(ctx, model_id)  # refreshed for the next reader; this one need not wait
            return is_open
    # Shielded: one viewer going away must not cancel the question the others wait on.
    return await asyncio.shield(_question(ctx, model_id))


async def _may_see(ctx: FeedContext, viewer: Identity | None, model_id: uuid.UUID) -> bool:
    if await _is_open(ctx, model_id):
        return True
    if viewer is None:
        return False
    try:
        await ctx.models.access_by_id(model_id, viewer)
    except ModelNotFound:
        return False
    return True


async def visible_models(
    ctx: FeedContext, viewer: Identity | None, model_ids: set[uuid.UUID]
) -> set[uuid.UUID]:
    ids = list(model_ids)
    answers = await asyncio.gather(*(_may_see(ctx, viewer, m) for m in ids))
    return {m for m, ok in zip(ids, answers, strict=True) if ok}


async def visible(ctx: FeedContext, viewer: Identity | None, posts: Sequence[Post]) -> list[Post]:
    """`posts` (in order) less those of models the viewer may not use."""
    models = {p.model_id for p in posts if p.model_id is not None}
    allowed = await visible_models(ctx, viewer, models)
    return [p for p in posts if p.model_id is None or p.model_id in allowed]
