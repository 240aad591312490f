"""Recommendations for the caller: models to try, people to follow, posts to read; and
"more like this" for a post or a model."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.feed.deps import FeedDep
from services.feed.recommendations.schemas import Recommendations, SimilarModels, SimilarPosts
from services.feed.recommendations.service import recommendation_service
from shared.auth.identity import CurrentUser
from shared.db import SessionDep
from shared.redis_client import RedisDep

router = APIRouter(prefix="/api/v1/recommendations", tags=["recommendations"])
ListLimit = Annotated[int, Query(ge=1, le=50, description="Items per list (1-50).")]


@router.get("", response_model=Recommendations)
async def recommendations(
    user: CurrentUser, session: SessionDep, redis: RedisDep, ctx: FeedDep, limit: ListLimit = 10
) -> Recommendations:
    """Models to try, people to follow and posts to read, each with the reason why."""
    return await recommendation_service.for_caller(session, ctx, redis, user, limit=limit)


@router.get("/posts/{post_id}/similar", response_model=SimilarPosts)
async def similar_posts(
    post_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    ctx: FeedDep,
    limit: ListLimit = 10,
) -> SimilarPosts:
    """More like this post: posts liked by the people who liked it."""
    items = await recommendation_service.similar_posts(
        session, ctx, redis, user, post_id, limit=limit
    )
    return SimilarPosts(items=items)


@router.get("/models/{model_id}/similar", response_model=SimilarModels)
async def similar_models(
    model_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    ctx: FeedDep,
    limit: ListLimit = 10,
) -> SimilarModels:
    """More like this model: models liked, followed or used by the same people."""
    items = await recommendation_service.similar_models(
        session, ctx, redis, user, model_id, limit=limit
    )
    return SimilarModels(items=items)
