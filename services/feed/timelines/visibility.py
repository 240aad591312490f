"""Which posts of a listing a viewer may see: a model's posts only for those who may use it.

Whether a model is open to everyone (public or unlisted) is asked of the hub in one question
for all of a listing's models it does not remember (never two questions in flight about one
model), and remembered for `visibility_cache_seconds`, so hot listings and live feeds do not
ask the hub on every read. For as long again after that, a reader gets the remembered answer
at once while one question refreshes it: with thousands of models, a read would otherwise wait
on the hub for nearly every page. So a model made private leaves listings within twice that
setting. Whether a viewer may see a private model is asked for each viewer and model, every
time (the hub's access check).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence

from services.feed.deps import FeedContext
from services.feed.models import Post
from shared.auth.identity import Identity
from shared.models_client import MAX_OPEN_QUESTION, ModelNotFound

# model id -> (whether it is open, i.e. not private; until when that is remembered)
_known: dict[uuid.UUID, tuple[bool, float]] = {}
# model id -> the question in flight about it (one question may be about several models)
_probes: dict[uuid.UUID, asyncio.Task[set[uuid.UUID]]] = {}
_REMEMBERED_MAX = 50_000


async def _probe(ctx: FeedContext, model_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    found = await ctx.models.open_models(model_ids)
    if ctx.settings.visibility_cache_seconds > 0:
        if len(_known) >= _REMEMBERED_MAX:
            _known.clear()  # entries live seconds: starting over costs a few hub calls
        until = time.monotonic() + ctx.settings.visibility_cache_seconds
        for model_id in model_ids:
            # Not open: private (or gone), so each viewer is asked about.
            _known[model_id] = (model_id in found, until)
    return found


def _question(
    ctx: FeedContext, model_ids: list[uuid.UUID]
) -> dict[uuid.UUID, asyncio.Task[set[uuid.UUID]]]:
    """The questions in flight about these models: one new question for those with none."""
    new = [model_id for model_id in model_ids if model_id not in _probes]
    for start in range(0, len(new), MAX_OPEN_QUESTION):
        part = new[start : start + MAX_OPEN_QUESTION]
        probe = asyncio.create_task(_probe(ctx, part))
        for model_id in part:
            _probes[model_id] = probe
        probe.add_done_callback(_settled(part))
    return {model_id: _probes[model_id] for model_id in model_ids}


def _settled(model_ids: list[uuid.UUID]) -> Callable[[asyncio.Task[set[uuid.UUID]]], None]:
    def done(probe: asyncio.Task[set[uuid.UUID]]) -> None:
        for model_id in model_ids:
            if _probes.get(model_id) is probe:
                del _probes[model_id]
        if not probe.cancelled():
            probe.exception()  # a refresh nobody waited on failed: the next read asks again

    return done


async def _open(ctx: FeedContext, model_ids: list[uuid.UUID]) -> dict[uuid.UUID, bool]:
    """Whether anyone may see each model's posts. Asked of the hub in one question per
    listing, and once at a time per model: a post reaching 200 live feeds as the remembered
    answer runs out costs one call, not 200."""
    answers: dict[uuid.UUID, bool] = {}
    stale: list[uuid.UUID] = []
    unknown: list[uuid.UUID] = []
    now = time.monotonic()
    window = ctx.settings.visibility_cache_seconds
    for model_id in model_ids:
        known = _known.get(model_id)
        if known is not None and known[1] > now:
            answers[model_id] = known[0]
        elif known is not None and known[1] + window > now:
            answers[model_id] = known[0]
            stale.append(model_id)
        else:
            unknown.append(model_id)
    if stale:
        _question(ctx, stale)  # refreshed for the next reader; this one need not wait
    if unknown:
        asked = _question(ctx, unknown)
        # Shielded: one viewer going away must not cancel the question the others wait on.
        found = {probe: await asyncio.shield(probe) for probe in dict.fromkeys(asked.values())}
        answers.update({model_id: model_id in found[probe] for model_id, probe in asked.items()})
    return answers


async def _may_use(ctx: FeedContext, viewer: Identity, model_id: uuid.UUID) -> bool:
    try:
        await ctx.models.access_by_id(model_id, viewer)
    except ModelNotFound:
        return False
    return True


async def visible_models(
    ctx: FeedContext, viewer: Identity | None, model_ids: set[uuid.UUID]
) -> set[uuid.UUID]:
    opened = await _open(ctx, list(model_ids))
    seen = {model_id for model_id, is_open in opened.items() if is_open}
    private = [model_id for model_id, is_open in opened.items() if not is_open]
    if viewer is not None and private:
        answers = await asyncio.gather(*(_may_use(ctx, viewer, m) for m in private))
        seen.update(m for m, ok in zip(private, answers, strict=True) if ok)
    return seen


async def visible(ctx: FeedContext, viewer: Identity | None, posts: Sequence[Post]) -> list[Post]:
    """`posts` (in order) less those of models the viewer may not use."""
    models = {p.model_id for p in posts if p.model_id is not None}
    allowed = await visible_models(ctx, viewer, models)
    return [p for p in posts if p.model_id is None or p.model_id in allowed]
