"""Timeline queries: published, non-deleted root posts, newest first (partial indexes
`ix_posts_timeline_*` answer each)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, Uuid, any_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.models import AuthorKind, ModelFollow, PersonFollow, Post, PostStatus
from shared.pagination import CursorPart, SortKey, keyset_page

KEYS = [
    SortKey(Post.published_at, CursorPart.TIMESTAMP, descending=True),
    SortKey(Post.id, CursorPart.UUID, descending=True),
]


# One array parameter rather than `IN (:id_1, ...)`: the same SQL, and so one prepared
# statement, for every page size, and no per-call rendering of the list.
_BY_IDS = select(Post).where(Post.id == any_(bindparam("ids", type_=ARRAY(Uuid()))))


async def reading(session: AsyncSession) -> None:
    """Run the session's queries without a transaction (autocommit), unless it has begun one.

    Listings only read, one statement at a time, so a transaction buys them nothing and costs
    two round trips (BEGIN, COMMIT) per request. Called just before the first query, so a
    listing that needs no query checks out no connection."""
    if not session.in_transaction():
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def timeline_posts() -> Select[Post]:
    return select(Post).where(
        Post.parent_id.is_(None), Post.status == PostStatus.PUBLISHED, Post.deleted.is_(False)
    )


def home_posts(user_id: uuid.UUID) -> Select[Post]:
    models = select(ModelFollow.model_id).where(ModelFollow.user_id == user_id)
    people = select(PersonFollow.followee_id).where(PersonFollow.follower_id == user_id)
    return timeline_posts().where(
        Post.author_kind == AuthorKind.MODEL,
        or_(Post.model_id.in_(models), Post.owner_id.in_(people)),
    )


async def page(
    session: AsyncSession, query: Select[Post], *, cursor: str | None, limit: int
) -> tuple[list[Post], str | None]:
    await reading(session)
    return await keyset_page(session, query, KEYS, cursor=cursor, limit=limit)


async def home_newest(
    session: AsyncSession, user_id: uuid.UUID, limit: int
) -> list[tuple[uuid.UUID, datetime]]:
    query = home_posts(user_id).with_only_columns(Post.id, Post.published_at)
    query = query.order_by(Post.published_at.desc(), Post.id.desc()).limit(limit)
    await reading(session)
    rows = (await session.execute(query)).all()
    return [(row[0], row[1]) for row in rows if row[1] is not None]


async def posts_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Post]:
    if not ids:
        return {}
    await reading(session)
    found = await session.scalars(_BY_IDS, {"ids": list(ids)})
    return {p.id: p for p in found}
