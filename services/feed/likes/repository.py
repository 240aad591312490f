"""Queries on post likes and the like counts they keep."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.models import Post, PostLike
from services.feed.posts.repository import Counts


async def add_like(session: AsyncSession, post_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """True when this call made the like (a repeat, even a concurrent one, does nothing)."""
    query = (
        insert(PostLike)
        .values(post_id=post_id, user_id=user_id)
        .on_conflict_do_nothing()
        .returning(PostLike.post_id)
    )
    return await session.scalar(query) is not None


async def remove_like(
    session: AsyncSession, post_id: uuid.UUID, user_id: uuid.UUID
) -> datetime | None:
    """When the removed like was given; None when there was none."""
    query = (
        delete(PostLike)
        .where(PostLike.post_id == post_id, PostLike.user_id == user_id)
        .returning(PostLike.created_at)
    )
    liked_at: datetime | None = await session.scalar(query)
    return liked_at


async def add_to_count(session: AsyncSession, post_id: uuid.UUID, delta: int) -> Counts:
    query = (
        update(Post)
        .where(Post.id == post_id)
        .values(like_count=Post.like_count + delta)
        .returning(Post.like_count, Post.reply_count)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(query)).one()
    return Counts(row.like_count, row.reply_count)


async def like_count(session: AsyncSession, post_id: uuid.UUID) -> int:
    post = await session.get(Post, post_id, populate_existing=True)
    return post.like_count if post else 0
