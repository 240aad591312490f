"""Queries on follows of models and of people."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select, union
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.models import ModelFollow, PersonFollow


async def add_model_follow(session: AsyncSession, user_id: uuid.UUID, model_id: uuid.UUID) -> bool:
    """True when this call made the follow (a repeat, even a concurrent one, does nothing)."""
    query = (
        insert(ModelFollow)
        .values(user_id=user_id, model_id=model_id)
        .on_conflict_do_nothing()
        .returning(ModelFollow.model_id)
    )
    return await session.scalar(query) is not None


async def remove_model_follow(
    session: AsyncSession, user_id: uuid.UUID, model_id: uuid.UUID
) -> bool:
    query = (
        delete(ModelFollow)
        .where(ModelFollow.user_id == user_id, ModelFollow.model_id == model_id)
        .returning(ModelFollow.model_id)
    )
    return await session.scalar(query) is not None


async def follows_model(session: AsyncSession, user_id: uuid.UUID, model_id: uuid.UUID) -> bool:
    query = select(ModelFollow.model_id).where(
        ModelFollow.user_id == user_id, ModelFollow.model_id == model_id
    )
    return await session.scalar(query) is not None


async def model_followers_count(session: AsyncSession, model_id: uuid.UUID) -> int:
    query = select(func.count()).where(ModelFollow.model_id == model_id)
    return int(await session.scalar(query) or 0)


async def add_person_follow(
    session: AsyncSession, follower_id: uuid.UUID, followee_id: uuid.UUID
) -> bool:
    query = (
        insert(PersonFollow)
        .values(follower_id=follower_id, followee_id=followee_id)
        .on_conflict_do_nothing()
        .returning(PersonFollow.followee_id)
    )
    return await session.scalar(query) is not None


async def remove_person_follow(
    session: AsyncSession, follower_id: uuid.UUID, followee_id: uuid.UUID
) -> bool:
    query = (
        delete(PersonFollow)
        .where(PersonFollow.follower_id == follower_id, PersonFollow.followee_id == followee_id)
        .returning(PersonFollow.followee_id)
    )
    return await session.scalar(query) is not None


async def followed_sources(
    session: AsyncSession, user_id: uuid.UUID
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The models `user_id` follows, and the people whose models they follow."""
    models = await session.scalars(
        select(ModelFollow.model_id).where(ModelFollow.user_id == user_id)
    )
    people = await session.scalars(
        select(PersonFollow.followee_id).where(PersonFollow.follower_id == user_id)
    )
    return set(models), set(people)


async def audience_batch(
    session: AsyncSession,
    model_id: uuid.UUID,
    owner_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[uuid.UUID]:
    """One batch (by user id) of the people whose home timeline a post by `model_id` (owned by
    `owner_id`) belongs on: the model's followers and the owner's."""
    audience = union(
        select(ModelFollow.user_id.label("user_id")).where(ModelFollow.model_id == model_id),
        select(PersonFollow.follower_id.label("user_id")).where(
            PersonFollow.followee_id == owner_id
        ),
    ).subquery()
    query = select(audience.c.user_id)
    if after is not None:
        query = query.where(audience.c.user_id > after)
    return list(await session.scalars(query.order_by(audience.c.user_id).limit(limit)))
