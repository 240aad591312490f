"""Likes of posts: idempotent, and counted in the same transaction as the like itself (one
insert or delete, then one UPDATE only when it changed something), so counts stay exact under
concurrent calls."""

from __future__ import annotations

import uuid

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.deps import FeedContext
from services.feed.likes import repository
from services.feed.models import PostStatus
from services.feed.posts.service import PostNotPublished, post_service
from shared.auth.identity import Identity
from shared.events import record_event


class LikeState(BaseModel):
    post_id: uuid.UUID
    liked: bool
    like_count: int


class LikeService:
    async def like(
        self, session: AsyncSession, ctx: FeedContext, caller: Identity, post_id: uuid.UUID
    ) -> LikeState:
        post = await post_service.visible(session, ctx, caller, post_id)
        if post.deleted or post.status != PostStatus.PUBLISHED:
            raise PostNotPublished("Only a published post can be liked.")
        if await repository.add_like(session, post.id, caller.user_id):
            count = await repository.add_to_count(session, post.id, 1)
            record_event(
                session,
                "post.liked",
                {
                    "post_id": str(post.id),
                    "user_id": str(caller.user_id),
                    "username": caller.username,
                    "owner_id": str(post.owner_id),
                    "model_id": str(post.model_id) if post.model_id else None,
                },
                source="feed",
            )
        else:
            count = await repository.like_count(session, post.id)
        return LikeState(post_id=post.id, liked=True, like_count=count)

    async def unlike(
        self, session: AsyncSession, ctx: FeedContext, caller: Identity, post_id: uuid.UUID
    ) -> LikeState:
        post = await post_service.visible(session, ctx, caller, post_id)
        if await repository.remove_like(session, post.id, caller.user_id):
            count = await repository.add_to_count(session, post.id, -1)
        else:
            count = await repository.like_count(session, post.id)
        return LikeState(post_id=post.id, liked=False, like_count=count)


like_service = LikeService()
