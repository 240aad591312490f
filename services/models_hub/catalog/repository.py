"""Queries on models, grants and likes; nothing else in the catalog writes SQL for them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.catalog.schemas import ModelSort
from services.models_hub.models import (
    Model,
    ModelAccessGrant,
    ModelLike,
    ModelSource,
    ModelStatus,
    ModelVersion,
    Visibility,
)
from shared.auth.identity import Identity
from shared.db import utcnow
from shared.pagination import (
    CursorPart,
    InvalidCursor,
    SortKey,
    decode_cursor,
    encode_cursor,
    keyset_page,
)


async def get_model(
    session: AsyncSession, model_id: uuid.UUID, *, for_update: bool = False
) -> Model | None:
    return await session.get(Model, model_id, with_for_update=for_update)


async def open_model_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Those of `ids` whose models are not private (anyone may use them)."""
    query = select(Model.id).where(Model.id.in_(ids), Model.visibility != Visibility.PRIVATE)
    return list((await session.scalars(query)).all())


async def lock_model(session: AsyncSession, model_id: uuid.UUID) -> None:
    """Take the model row's lock (it serialises version numbering) without loading it anew."""
    await session.execute(select(Model.id).where(Model.id == model_id).with_for_update())


async def get_by_ref(session: AsyncSession, owner: str, slug: str) -> Model | None:
    return await session.scalar(
        select(Model).where(Model.owner_username == owner.lower(), Model.slug == slug.lower())
    )


async def get_owned(session: AsyncSession, owner_id: uuid.UUID, slug: str) -> Model | None:
    return await session.scalar(
        select(Model).where(Model.owner_id == owner_id, Model.slug == slug.lower())
    )


async def count_models(session: AsyncSession, owner_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).where(Model.owner_id == owner_id)) or 0)


async def add_model(session: AsyncSession, model: Model) -> Model:
    """Insert `model` now, in a savepoint: a taken slug raises IntegrityError and leaves the
    rest of the transaction usable."""
    session.add(model)
    async with session.begin_nested():
        await session.flush()
    return model


async def delete_model(session: AsyncSession, model: Model) -> None:
    # The row must not point at a version while its versions go by cascade.
    await session.execute(update(Model).where(Model.id == model.id).values(active_version_id=None))
    await session.delete(model)


async def version_statuses(session: AsyncSession, model_id: uuid.UUID) -> set[str]:
    rows = await session.scalars(
        select(ModelVersion.status).where(ModelVersion.model_id == model_id).distinct()
    )
    return set(rows)


async def versions_by_id(
    session: AsyncSession, version_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ModelVersion]:
    """The versions with these ids, in one statement (a page's active versions)."""
    if not version_ids:
        return {}
    rows = await session.scalars(select(ModelVersion).where(ModelVersion.id.in_(version_ids)))
    return {version.id: version for version in rows}


async def versions_since(session: AsyncSession, owner_id: uuid.UUID, since: datetime) -> int:
    query = select(func.count()).where(
        ModelVersion.owner_id == owner_id, ModelVersion.created_at >= since
    )
    return int(await session.scalar(query) or 0)


# ---- grants -------------------------------------------------------------------------------------


async def get_grant(
    session: AsyncSession, model_id: uuid.UUID, viewer: Identity | None
) -> ModelAccessGrant | None:
    if viewer is None:
        return None
    return await session.get(ModelAccessGrant, (model_id, viewer.user_id))


async def get_user_grant(
    session: AsyncSession, model_id: uuid.UUID, user_id: uuid.UUID
) -> ModelAccessGrant | None:
    return await session.get(ModelAccessGrant, (model_id, user_id))


async def add_grant(session: AsyncSession, grant: ModelAccessGrant) -> ModelAccessGrant:
    session.add(grant)
    await session.flush()
    await session.refresh(grant)  # its created_at, set by the database
    return grant


async def list_grants(session: AsyncSession, model_id: uuid.UUID) -> list[ModelAccessGrant]:
    rows = await session.scalars(
        select(ModelAccessGrant)
        .where(ModelAccessGrant.model_id == model_id)
        .order_by(ModelAccessGrant.username)
    )
    return list(rows)


async def delete_grant(session: AsyncSession, model_id: uuid.UUID, username: str) -> None:
    await session.execute(
        delete(ModelAccessGrant).where(
            ModelAccessGrant.model_id == model_id, ModelAccessGrant.username == username.lower()
        )
    )


# ---- likes --------------------------------------------------------------------------------------


async def get_like(
    session: AsyncSession, model_id: uuid.UUID, user_id: uuid.UUID
) -> ModelLike | None:
    return await session.get(ModelLike, (model_id, user_id))


def add_like(session: AsyncSession, like: ModelLike) -> None:
    session.add(like)


async def delete_like(session: AsyncSession, like: ModelLike) -> None:
    await session.delete(like)


async def liked_set(
    session: AsyncSession, model_ids: Sequence[uuid.UUID], viewer: Identity | None
) -> set[uuid.UUID]:
    """Which of these models the viewer likes, in one statement."""
    if viewer is None or not model_ids:
        return set()
    rows = await session.scalars(
        select(ModelLike.model_id).where(
            ModelLike.user_id == viewer.user_id, ModelLike.model_id.in_(model_ids)
        )
    )
    return set(rows)


# ---- listings -----------------------------------------------------------------------------------


def _listed(viewer: Identity | None) -> ColumnElement[bool] | None:
    """Which models listings show the viewer: public ones and their own (admins: all)."""
    if viewer is None:
        return Model.visibility == Visibility.PUBLIC
    if viewer.is_admin:
        return None
    return or_(Model.visibility == Visibility.PUBLIC, Model.owner_id == viewer.user_id)


def list_query(
    viewer: Identity | None,
    *,
    q: str | None = None,
    owner: str | None = None,
    tag: str | None = None,
    status: ModelStatus | None = None,
    source: ModelSource | None = None,
) -> Select[Model]:
    """Models the viewer may see in listings, filtered."""
    query = select(Model)
    listed = _listed(viewer)
    if listed is not None:
        query = query.where(listed)
    if q:
        query = query.where(
            or_(
                Model.name.icontains(q, autoescape=True),
                Model.description.icontains(q, autoescape=True),
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


async def usable_models(session: AsyncSession, viewer: Identity) -> list[Model]:
    """Ready models the viewer may use and should see listed: what listings show them, and
    private ones granted to them; oldest first."""
    query = select(Model).where(Model.status == ModelStatus.READY)
    listed = _listed(viewer)
    if listed is not None:  # admins see every model
        granted = select(ModelAccessGrant.model_id).where(
            ModelAccessGrant.user_id == viewer.user_id
        )
        query = query.where(or_(listed, Model.id.in_(granted)))
    return list(await session.scalars(query.order_by(Model.created_at)))


# The kind of each keyset sort column: likes_count is an INTEGER, usage_count a BIGINT.
_KEYSET_SORTS: dict[ModelSort, list[SortKey]] = {
    ModelSort.RECENT: [SortKey(Model.created_at, CursorPart.TIMESTAMP, descending=True)],
    ModelSort.MOST_USED: [SortKey(Model.usage_count, CursorPart.INT64, descending=True)],
    ModelSort.MOST_LIKED: [SortKey(Model.likes_count, CursorPart.INT32, descending=True)],
}
_BY_ID = SortKey(Model.id, CursorPart.UUID, descending=True)


async def keyset(
    session: AsyncSession,
    query: Select[Model],
    sort: ModelSort,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[Model], str | None]:
    """One page in a sort whose values are stored columns (all but trending)."""
    return await keyset_page(
        session, query, [*_KEYSET_SORTS[sort], _BY_ID], cursor=cursor, limit=limit
    )


def _trending_score(at: datetime) -> ColumnElement[Any]:
    hours = func.extract("epoch", at - Model.created_at) / 3600.0
    activity = Model.likes_count * 2.0 + Model.usage_count / 10.0 + 1.0
    return activity / func.power(hours + 2.0, 1.5)


async def trending(
    session: AsyncSession, query: Select[Model], *, cursor: str | None, limit: int
) -> tuple[list[Model], str | None]:
    """One page by trending score, which is not a stored column and no keyset can follow: it
    decays with the time it is computed at. So the cursor carries that time, frozen at the
    first page, with the position reached: every page ranks by the same scores, and pages by
    position over that one order (a like or a use between pages can still move a model)."""
    if cursor:
        offset, at = decode_cursor(cursor, CursorPart.INT64, CursorPart.TIMESTAMP)
        if offset < 0:
            raise InvalidCursor()
    else:
        offset, at = 0, utcnow()
    ordered = query.order_by(_trending_score(at).desc(), Model.id.desc())
    rows = list(await session.scalars(ordered.offset(offset).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(offset + limit, at.isoformat())
