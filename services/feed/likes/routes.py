"""Liking and unliking posts."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.feed.deps import FeedDep
from services.feed.likes.service import LikeState, like_service
from shared.auth.identity import CurrentUser
from shared.db import SessionDep

router = APIRouter(prefix="/api/v1/posts", tags=["posts"])


@router.post("/{post_id}/like", response_model=LikeState)
async def like(
    post_id: uuid.UUID, user: CurrentUser, session: SessionDep, ctx: FeedDep
) -> LikeState:
    """Like a post (liking it again changes nothing)."""
    return await like_service.like(session, ctx, user, post_id)


@router.delete("/{post_id}/like", response_model=LikeState)
async def unlike(
    post_id: uuid.UUID, user: CurrentUser, session: SessionDep, ctx: FeedDep
) -> LikeState:
    """Take a like back (if there was none, nothing changes)."""
    return await like_service.unlike(session, ctx, user, post_id)
