"""Queries of the recommender: the signals it learns from, the projections of the hub's events
it keeps (model likes, model usage), and the caller's own follows and likes at read time."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.models import (
    AuthorKind,
    ModelFollow,
    ModelLikeSignal,
    ModelUsageSignal,
    PersonFollow,
    Post,
    PostLike,
    PostStatus,
)
from services.feed.recommendations.engine import Signals
from shared.db import utcnow

# The newest root posts that may be recommended (bounds the job's work).
CANDIDATE_POSTS = 5000


async def add_model_like(session: AsyncSession, user_id: uuid.UUID, model_id: uuid.UUID) -> None:
    await session.execute(
        insert(ModelLikeSignal).values(user_id=user_id, model_id=model_id).on_conflict_do_nothing()
    )


async def add_model_use(
    session: AsyncSession, user_id: uuid.UUID, model_id: uuid.UUID, at: datetime
) -> None:
    query = insert(ModelUsageSignal).values(
        user_id=user_id, model_id=model_id, uses=1, last_used_at=at
    )
    await session.execute(
        query.on_conflict_do_update(
            index_elements=["user_id", "model_id"],
            set_={"uses": ModelUsageSignal.uses + 1, "last_used_at": at},
        )
    )


async def forget_model(session: AsyncSession, model_id: uuid.UUID) -> None:
    await session.execute(delete(ModelLikeSignal).where(ModelLikeSignal.model_id == model_id))
    await session.execute(delete(ModelUsageSignal).where(ModelUsageSignal.model_id == model_id))


async def load_signals(session: AsyncSession) -> Signals:
    live = (Post.status == PostStatus.PUBLISHED) & ~Post.deleted
    signals = Signals()
    signals.model_likes = [
        (str(u), str(m))
        for u, m in await session.execute(select(ModelLikeSignal.user_id, ModelLikeSignal.model_id))
    ]
    signals.model_follows = [
        (str(u), str(m))
        for u, m in await session.execute(select(ModelFollow.user_id, ModelFollow.model_id))
    ]
    signals.model_usage = [
        (str(u), str(m), int(n))
        for u, m, n in await session.execute(
            select(ModelUsageSignal.user_id, ModelUsageSignal.model_id, ModelUsageSignal.uses)
        )
    ]
    signals.post_likes = [
        (str(u), str(p))
        for u, p in await session.execute(
            select(PostLike.user_id, PostLike.post_id)
            .join(Post, Post.id == PostLike.post_id)
            .where(live)
        )
    ]
    signals.person_follows = [
        (str(f), str(e))
        for f, e in await session.execute(
            select(PersonFollow.follower_id, PersonFollow.followee_id)
        )
    ]
    now = utcnow()
    candidates = await session.execute(
        select(Post.id, Post.model_id, Post.reply_count, Post.published_at)
        .where(live, Post.parent_id.is_(None), Post.author_kind == AuthorKind.MODEL)
        .order_by(Post.published_at.desc())
        .limit(CANDIDATE_POSTS)
    )
    for post_id, model_id, replies, published in candidates:
        age = (now - (published or now)).total_seconds() / 86400
        signals.posts.append((str(post_id), str(model_id), int(replies), max(age, 0.0)))
        signals.post_models[str(post_id)] = str(model_id)
    names = await session.execute(
        select(
            Post.model_id, func.max(Post.model_ref), Post.owner_id, func.max(Post.owner_username)
        )
        .where(Post.model_id.is_not(None))
        .group_by(Post.model_id, Post.owner_id)
    )
    for model_id, model_ref, owner_id, owner_username in names:
        if model_id is not None and model_ref:
            signals.model_names[str(model_id)] = model_ref
            signals.people_names[str(owner_id)] = owner_username
    liked_posts = {p for _, p in signals.post_likes} - set(signals.post_models)
    if liked_posts:
        for post_id, model_id in await session.execute(
            select(Post.id, Post.model_id).where(Post.id.in_([uuid.UUID(p) for p in liked_posts]))
        ):
            if model_id is not None:
                signals.post_models[str(post_id)] = str(model_id)
    return signals


async def followed_models(
    session: AsyncSession, user_id: uuid.UUID, model_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Of `model_ids`, those the user follows or liked."""
    if not model_ids:
        return set()
    follows = select(ModelFollow.model_id).where(
        ModelFollow.user_id == user_id, ModelFollow.model_id.in_(list(model_ids))
    )
    likes = select(ModelLikeSignal.model_id).where(
        ModelLikeSignal.user_id == user_id, ModelLikeSignal.model_id.in_(list(model_ids))
    )
    return set(await session.scalars(follows.union(likes)))


async def followed_people(
    session: AsyncSession, user_id: uuid.UUID, people: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    if not people:
        return set()
    query = select(PersonFollow.followee_id).where(
        PersonFollow.follower_id == user_id, PersonFollow.followee_id.in_(list(people))
    )
    return set(await session.scalars(query))


async def liked_posts(
    session: AsyncSession, user_id: uuid.UUID, post_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    if not post_ids:
        return set()
    query = select(PostLike.post_id).where(
        PostLike.user_id == user_id, PostLike.post_id.in_(list(post_ids))
    )
    return set(await session.scalars(query))


async def listed_posts(session: AsyncSession, post_ids: Collection[uuid.UUID]) -> list[Post]:
    """Of `post_ids`, the published, undeleted ones."""
    if not post_ids:
        return []
    query = select(Post).where(
        Post.id.in_(list(post_ids)), Post.status == PostStatus.PUBLISHED, ~Post.deleted
    )
    return list(await session.scalars(query))


async def usernames(session: AsyncSession, people: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names posts show for these people (their newest)."""
    if not people:
        return {}
    query = (
        select(Post.owner_id, func.max(Post.owner_username))
        .where(Post.owner_id.in_(list(people)))
        .group_by(Post.owner_id)
    )
    return {owner: name for owner, name in await session.execute(query)}
