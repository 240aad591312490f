"""Following models: `/api/v1/models/{model_id}/follow`, routed here by the gateway."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.feed.deps import FeedDep
from services.feed.follows.schemas import ModelFollowState
from services.feed.follows.service import follow_service
from shared.auth.identity import CurrentUser, OptionalUser
from shared.db import SessionDep
from shared.redis_client import RedisDep

router = APIRouter(prefix="/api/v1/models", tags=["follows"])


@router.get("/{model_id}/follow", response_model=ModelFollowState)
async def follow_state(
    model_id: uuid.UUID, viewer: OptionalUser, session: SessionDep, ctx: FeedDep
) -> ModelFollowState:
    """The model's follower count, and whether you follow it."""
    return await follow_service.model_state(session, ctx, viewer, model_id)


@router.post("/{model_id}/follow", response_model=ModelFollowState)
async def follow(
    model_id: uuid.UUID, user: CurrentUser, session: SessionDep, ctx: FeedDep, redis: RedisDep
) -> ModelFollowState:
    """Follow a model: its posts come to your home timeline (following again changes nothing)."""
    return await follow_service.follow_model(session, ctx, redis, user, model_id)


@router.delete("/{model_id}/follow", response_model=ModelFollowState)
async def unfollow(
    model_id: uuid.UUID, user: CurrentUser, session: SessionDep, ctx: FeedDep, redis: RedisDep
) -> ModelFollowState:
    """Stop following a model (if you did not, nothing changes)."""
    return await follow_service.unfollow_model(session, ctx, redis, user, model_id)
