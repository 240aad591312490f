"""Likes of posts: idempotent, and counted in the same transaction as the like itself (one
insert or delete, then one UPDATE only when it changed something), so counts stay exact under
concurrent calls. A like records `post.liked` (notifications, trending, live counts), an
unlike `post.unliked` (live counts, trending)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.deps import FeedContext
from services.feed.likes import repository
from services.feed.models import Post, PostStatus
from services.feed.posts.repository import Counts
from services.feed.posts.service import PostNotPublished, post_service
from shared.auth.identity import Identity
from shared.events import record_event


class LikeState(BaseModel):
    post_id: uuid.UUID
    liked: bool
    like_count: int


def _record(
    session: AsyncSession,
    event_type: str,
    post: Post,
    caller: Identity,
    counts: Counts,
    liked_at: datetime | None = None,
) -> None:
    payload: dict[str, Any] = {
        "post_id": str(post.id),
        "user_id": str(caller.user_id),
        "username": caller.username,
        "owner_id": str(post.owner_id),
        "model_id": str(post.model_id) if post.model_id else None,
        "counts": counts._asdict(),
    }
    if liked_at is not None:
        # Trending takes the like back from the hour it was credited to.
        payload["liked_at"] = liked_at.isoformat()
    record_event(session, event_type, payload, source="feed")


class LikeService:
    async def like(
        self, session: AsyncSession, ctx: FeedContext, caller: Identity, post_id: uuid.UUID
    ) -> LikeState:
        post = await post_service.visible(session, ctx, caller, post_id)
        if post.deleted or post.status != PostStatus.PUBLISHED:
            raise PostNotPublished("Only a published post can be liked.")
        if await repository.add_like(session, post.id, caller.user_id):
            counts = await repository.add_to_count(session, post.id, 1)
            _record(session, "post.liked", post, caller, counts)
            count = counts.like_count
        else:
            count = await repository.like_count(session, post.id)
        return LikeState(post_id=post.id, liked=True, like_count=count)

    async def unlike(
        self, session: AsyncSession, ctx: FeedContext, caller: Identity, post_id: uuid.UUID
    ) -> LikeState:
        post = await post_service.visible(session, ctx, caller, post_id)
        liked_at = await repository.remove_like(session, post.id, caller.user_id)
        if liked_at is not None:
            counts = await repository.add_to_count(session, post.id, -1)
            # Open live feeds show the new count; trending takes the like back.
            _record(session, "post.unliked", post, caller, counts, liked_at)
            count = counts.like_count
        else:
            count = await repository.like_count(session, post.id)
        return LikeState(post_id=post.id, liked=False, like_count=count)


like_service = LikeService()
