"""Which posts of a listing a viewer may see: a model's posts only for those who may use it.

The hub's access check answers per model; a listing asks once per distinct model, all at
once, and remembers for `visibility_cache_seconds` that a model is public or unlisted (every
viewer may see those), so hot listings do not ask the hub on every read. A private model is
asked about for each viewer, every time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from services.feed.deps import FeedContext
from services.feed.models import Post
from shared.auth.identity import Identity
from shared.models_client import ModelNotFound

_open_models: dict[uuid.UUID, float] = {}  # model id -> until when it is known not private
_REMEMBERED_MAX = 50_000


async def _may_see(ctx: FeedContext, viewer: Identity | None, model_id: uuid.UUID) -> bool:
    if _open_models.get(model_id, 0.0) > time.monotonic():
        return True
    try:
        model = await ctx.models.access_by_id(model_id, viewer)
    except ModelNotFound:
        return False
    if model.visibility != "private" and ctx.settings.visibility_cache_seconds > 0:
        if len(_open_models) >= _REMEMBERED_MAX:
            _open_models.clear()  # entries live seconds: starting over costs a few hub calls
        _open_models[model_id] = time.monotonic() + ctx.settings.visibility_cache_seconds
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
