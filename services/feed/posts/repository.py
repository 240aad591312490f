"""Queries on posts; nothing else in the feed writes SQL for them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.models import Post, PostStatus
from shared.db import utcnow
from shared.pagination import CursorPart, SortKey, keyset_page


async def get_post(
    session: AsyncSession, post_id: uuid.UUID, *, for_update: bool = False
) -> Post | None:
    return await session.get(Post, post_id, with_for_update=for_update)


async def by_idempotency_key(session: AsyncSession, creator_id: uuid.UUID, key: str) -> Post | None:
    query = select(Post).where(Post.creator_id == creator_id, Post.idempotency_key == key)
    return await session.scalar(query)


async def add_post(session: AsyncSession, post: Post) -> Post:
    """Insert `post`; if a concurrent request with the same idempotency key won, its post."""
    try:
        async with session.begin_nested():
            session.add(post)
            await session.flush()
    except IntegrityError:
        existing = await by_idempotency_key(session, post.creator_id, post.idempotency_key)
        if existing is None:
            raise
        return existing
    return post


async def lock_model_day(session: AsyncSession, model_id: uuid.UUID) -> None:
    """Serialise posting by one model until commit, so the daily cap is not raced past."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"feed-model-posts:{model_id}"},
    )


async def count_model_posts_since(
    session: AsyncSession, model_id: uuid.UUID, since: datetime
) -> int:
    query = select(func.count()).where(Post.model_id == model_id, Post.created_at >= since)
    return int(await session.scalar(query) or 0)


async def ancestors(session: AsyncSession, post: Post) -> list[Post]:
    """The thread from its root down to `post`'s parent, in order."""
    if post.parent_id is None:
        return []
    chain = select(Post.id, Post.parent_id).where(Post.id == post.parent_id).cte(recursive=True)
    chain = chain.union_all(
        select(Post.id, Post.parent_id).join(chain, Post.id == chain.c.parent_id)
    )
    query = select(Post).join(chain, Post.id == chain.c.id).order_by(Post.depth)
    return list(await session.scalars(query))


async def thread_page(
    session: AsyncSession, root_id: uuid.UUID, *, cursor: str | None, limit: int
) -> tuple[list[Post], str | None]:
    query = select(Post).where(Post.root_id == root_id)
    keys = [SortKey(Post.created_at, CursorPart.TIMESTAMP), SortKey(Post.id, CursorPart.UUID)]
    return await keyset_page(session, query, keys, cursor=cursor, limit=limit)


async def has_replies(session: AsyncSession, post_id: uuid.UUID) -> bool:
    query = select(Post.id).where(Post.parent_id == post_id).limit(1)
    return await session.scalar(query) is not None


async def finish(session: AsyncSession, post_id: uuid.UUID, **values: Any) -> Post | None:
    """Set a generating post's outcome; None when it is no longer generating (a retry after
    success, or the sweeper got there first), so an outcome is never overwritten."""
    query = (
        update(Post)
        .where(Post.id == post_id, Post.status == PostStatus.GENERATING)
        .values(**values, updated_at=utcnow())
        .returning(Post)
        .execution_options(synchronize_session=False)
    )
    return await session.scalar(query)


class Counts(NamedTuple):
    """A post's counts as the statement that changed them left them (its row locked until
    commit, so they are exact)."""

    like_count: int
    reply_count: int


async def add_replies(session: AsyncSession, post_id: uuid.UUID, delta: int) -> Counts:
    query = (
        update(Post)
        .where(Post.id == post_id)
        .values(reply_count=func.greatest(Post.reply_count + delta, 0))
        .returning(Post.like_count, Post.reply_count)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(query)).one()
    return Counts(row.like_count, row.reply_count)


async def fail_stuck(session: AsyncSession, before: datetime, reason: str) -> Sequence[uuid.UUID]:
    query = (
        update(Post)
        .where(Post.status == PostStatus.GENERATING, Post.created_at < before)
        .values(status=PostStatus.FAILED, failure_reason=reason, updated_at=utcnow())
        .returning(Post.id)
        .execution_options(synchronize_session=False)
    )
    return list(await session.scalars(query))


async def delete_post(session: AsyncSession, post_id: uuid.UUID) -> None:
    await session.execute(delete(Post).where(Post.id == post_id))
