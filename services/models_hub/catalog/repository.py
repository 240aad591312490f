"""Queries on models, grants and likes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.catalog.schemas import ModelSort
from services.models_hub.models import Model, ModelAccessGrant, ModelLike, ModelVersion
from shared.auth.identity import Identity


async def get_model(session: AsyncSession, model_id: uuid.UUID) -> Model | None:
    return await session.get(Model, model_id)


async def get_by_ref(session: AsyncSession, owner: str, slug: str) -> Model | None:
    return await session.scalar(
        select(Model).where(Model.owner_username == owner.lower(), Model.slug == slug.lower())
    )


async def get_grant(
    session: AsyncSession, model_id: uuid.UUID, viewer: Identity | None
) -> ModelAccessGrant | None:
    if viewer is None:
        return None
    return await session.get(ModelAccessGrant, (model_id, viewer.user_id))


async def count_models(session: AsyncSession, owner_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).where(Model.owner_id == owner_id)) or 0)


async def versions_today(session: AsyncSession, owner_id: uuid.UUID, since: datetime) -> int:
    query = select(func.count()).where(
        ModelVersion.owner_id == owner_id, ModelVersion.created_at >= since
    )
    return int(await session.scalar(query) or 0)


async def liked(session: AsyncSession, model_id: uuid.UUID, viewer: Identity | None) -> bool | None:
    if viewer is None:
        return None
    return await session.get(ModelLike, (model_id, viewer.user_id)) is not None


async def liked_set(
    session: AsyncSession, model_ids: list[uuid.UUID], viewer: Identity | None
) -> set[uuid.UUID]:
    if viewer is None or not model_ids:
        return set()
    rows = await session.scalars(
        select(ModelLike.model_id).where(
            ModelLike.user_id == viewer.user_id, ModelLike.model_id.in_(model_ids)
        )
    )
    return set(rows)


def _trending_score() -> ColumnElement[Any]:
    hours = func.extract("epoch", func.now() - Model.created_at) / 3600.0
    activity = Model.likes_count * 2.0 + Model.usage_count / 10.0 + 1.0
    return activity / func.power(hours + 2.0, 1.5)


SORT_COLUMNS: dict[ModelSort, Any] = {
    ModelSort.RECENT: Model.created_at,
    ModelSort.MOST_USED: Model.usage_count,
    ModelSort.MOST_LIKED: Model.likes_count,
}


def list_query(
    viewer: Identity | None,
    *,
    q: str | None,
    owner: str | None,
    tag: str | None,
    status: str | None,
    source: str | None,
) -> Select[Model]:
    """Models the viewer may see in listings: public ones, plus their own (admins: all)."""
    query = select(Model)
    if viewer is None:
        query = query.where(Model.visibility == "public")
    elif not viewer.is_admin:
        query = query.where(or_(Model.visibility == "public", Model.owner_id == viewer.user_id))
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        query = query.where(
            or_(
                Model.name.ilike(pattern),
                Model.description.ilike(pattern),
                Model.tags.contains([q.lower()]),
            )
        )
    if owner:
        query = query.where(Model.owner_username == owner.lower())
    if tag:
        query = query.where(Model.tags.contains([tag.lower()]))
    if status:
        query = query.where(Model.status == status)
    if source:
        query = query.where(Model.source == source)
    return query


def keyset(
    query: Select[Model], sort: ModelSort, after: tuple[Any, uuid.UUID] | None, limit: int
) -> Select[Model]:
    column = SORT_COLUMNS[sort]
    if after is not None:
        value, last_id = after
        query = query.where(or_(column < value, and_(column == value, Model.id < last_id)))
    return query.order_by(column.desc(), Model.id.desc()).limit(limit)


def trending(query: Select[Model], offset: int, limit: int) -> Select[Model]:
    # Scores drift with time, so trending pages by position rather than by score.
    return query.order_by(_trending_score().desc(), Model.id.desc()).offset(offset).limit(limit)
