"""Reading recommendations: the job's ranked picks (store.py), checked at read time against
what the caller may see now and what they already follow or liked since the job ran.

Models are shown only if the caller may use them (one call to the hub's list of usable
models) and are not their own; posts only if published and by a model the caller may use;
people only if not the caller and not already followed.
"""

from __future__ import annotations

import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.deps import FeedContext
from services.feed.models import Post
from services.feed.posts.routes import read as read_post
from services.feed.posts.service import post_service
from services.feed.recommendations import repository, store
from services.feed.recommendations.schemas import (
    Recommendations,
    RecommendedModel,
    RecommendedPerson,
    RecommendedPost,
)
from shared.auth.identity import Identity
from shared.models_client import UsableModel


def _ids(picks: list[dict[str, Any]]) -> list[uuid.UUID]:
    return [uuid.UUID(p["id"]) for p in picks]


def _reason(pick: dict[str, Any], usable: dict[uuid.UUID, UsableModel]) -> str:
    """The pick's reason, naming its model as the caller knows it (they liked, followed or
    used it, so they may see it; one they no longer may is not named)."""
    reason = str(pick["reason"])
    because = pick.get("because_model")
    if because is None:
        return reason
    model = usable.get(uuid.UUID(because))
    return reason.replace("{model}", model.ref if model else "a model you liked")


class RecommendationService:
    async def _models(
        self,
        session: AsyncSession,
        caller: Identity,
        picks: list[dict[str, Any]],
        usable: dict[uuid.UUID, UsableModel],
        limit: int,
    ) -> list[RecommendedModel]:
        had = await repository.followed_models(session, caller.user_id, _ids(picks))
        items = []
        for pick in picks:
            model = usable.get(uuid.UUID(pick["id"]))
            if model is None or model.id in had or model.owner == caller.username:
                continue
            items.append(
                RecommendedModel(
                    id=model.id,
                    ref=model.ref,
                    owner=model.owner,
                    score=pick["score"],
                    reason=_reason(pick, usable),
                )
            )
        return items[:limit]

    async def _posts(
        self,
        session: AsyncSession,
        caller: Identity,
        picks: list[dict[str, Any]],
        usable: dict[uuid.UUID, UsableModel],
        limit: int,
    ) -> list[RecommendedPost]:
        ids = _ids(picks)
        liked = await repository.liked_posts(session, caller.user_id, ids)
        posts: dict[uuid.UUID, Post] = {
            p.id: p for p in await repository.listed_posts(session, ids)
        }
        items = []
        for pick in picks:
            post = posts.get(uuid.UUID(pick["id"]))
            if post is None or post.id in liked or post.owner_id == caller.user_id:
                continue
            if post.model_id is None or post.model_id not in usable:
                continue
            items.append(
                RecommendedPost(
                    post=read_post(post), score=pick["score"], reason=_reason(pick, usable)
                )
            )
        return items[:limit]

    async def _people(
        self,
        session: AsyncSession,
        caller: Identity,
        picks: list[dict[str, Any]],
        usable: dict[uuid.UUID, UsableModel],
        limit: int,
    ) -> list[RecommendedPerson]:
        ids = _ids(picks)
        followed = await repository.followed_people(session, caller.user_id, ids)
        names = await repository.usernames(session, ids)
        return [
            RecommendedPerson(id=i, username=names[i], score=p["score"], reason=_reason(p, usable))
            for i, p in zip(ids, picks, strict=True)
            if i != caller.user_id and i not in followed and i in names
        ][:limit]

    async def for_caller(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        redis: Redis,
        caller: Identity,
        *,
        limit: int,
    ) -> Recommendations:
        """The caller's picks, or the popular ones (cold start) when they have none."""
        lists = await store.load(redis, store.user_key(str(caller.user_id)))
        personalized = lists is not None
        if lists is None:
            lists = await store.load(redis, store.POPULAR) or {}
        usable = {m.id: m for m in await ctx.models.usable(caller)}
        return Recommendations(
            models=await self._models(session, caller, lists.get("model", []), usable, limit),
            people=await self._people(session, caller, lists.get("person", []), usable, limit),
            posts=await self._posts(session, caller, lists.get("post", []), usable, limit),
            personalized=personalized,
        )

    async def similar_posts(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        redis: Redis,
        caller: Identity,
        post_id: uuid.UUID,
        *,
        limit: int,
    ) -> list[RecommendedPost]:
        """Posts liked by the people who liked this one (404 for a post the caller may not see)."""
        post = await post_service.visible(session, ctx, caller, post_id)
        picks = await store.load(redis, store.similar_key("post", str(post.id))) or []
        usable = {m.id: m for m in await ctx.models.usable(caller)}
        return await self._posts(session, caller, picks, usable, limit)

    async def similar_models(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        redis: Redis,
        caller: Identity,
        model_id: uuid.UUID,
        *,
        limit: int,
    ) -> list[RecommendedModel]:
        """Models liked, followed or used by the same people (404 for a model the caller may
        not use)."""
        model = await ctx.models.access_by_id(model_id, caller)
        picks = await store.load(redis, store.similar_key("model", str(model.id))) or []
        usable = {m.id: m for m in await ctx.models.usable(caller)}
        return await self._models(session, caller, picks, usable, limit)


recommendation_service = RecommendationService()
