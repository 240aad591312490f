"""Queries on upload sessions and their parts; nothing else in the hub writes SQL for them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.models import (
    Model,
    UploadSession,
    UploadSessionPart,
    UploadSessionStatus,
)


async def add_session(session: AsyncSession, upload: UploadSession) -> UploadSession:
    session.add(upload)
    await session.flush()
    return upload


async def get_session(
    session: AsyncSession,
    session_id: uuid.UUID,
    *,
    for_update: bool = False,
    for_share: bool = False,
) -> UploadSession | None:
    query = select(UploadSession).where(UploadSession.id == session_id)
    if for_update:
        query = query.with_for_update()
    elif for_share:
        # Parts of one session are recorded in parallel: they share the lock, and only
        # completing or aborting the session (FOR UPDATE) waits for them.
        query = query.with_for_update(read=True)
    return await session.scalar(query)


async def parts(session: AsyncSession, session_id: uuid.UUID) -> list[UploadSessionPart]:
    rows = await session.scalars(
        select(UploadSessionPart)
        .where(UploadSessionPart.session_id == session_id)
        .order_by(UploadSessionPart.file_index, UploadSessionPart.part_offset)
    )
    return list(rows)


def _still_open(session_id: uuid.UUID) -> Select[uuid.UUID]:
    """The session's id while parts may arrive (open, not completing, not expired), read under
    its shared lock: completing or aborting it (FOR UPDATE) waits for the statement."""
    return (
        select(UploadSession.id)
        .where(
            UploadSession.id == session_id,
            UploadSession.status == UploadSessionStatus.OPEN,
            UploadSession.completing_since.is_(None),
            UploadSession.expires_at > func.now(),
        )
        .with_for_update(read=True)
    )


async def forget_part_if_open(
    session: AsyncSession, session_id: uuid.UUID, file_index: int, offset: int
) -> bool:
    """Forget what an earlier copy of the part recorded, if the session is still open; False
    when it is not. One statement: a part's checks cost one round trip."""
    still_open = _still_open(session_id).cte("still_open")
    forgotten = (
        delete(UploadSessionPart)
        .where(
            UploadSessionPart.session_id.in_(select(still_open.c.id)),
            UploadSessionPart.file_index == file_index,
            UploadSessionPart.part_offset == offset,
        )
        .returning(UploadSessionPart.session_id)
        .cte("forgotten")
    )
    found = await session.scalar(select(func.count()).select_from(still_open).add_cte(forgotten))
    return bool(found)


async def record_part_if_open(
    session: AsyncSession,
    session_id: uuid.UUID,
    file_index: int,
    offset: int,
    *,
    length: int,
    crc32c: str,
    etag: str,
) -> bool:
    """Insert the part, or replace what an earlier copy recorded, if the session is still
    open (not closed, completing or expired); False when it is not. One statement, which
    takes the session's shared lock as it reads it: parts that arrive together never lose
    each other's rows, and completing or aborting the session waits for it."""
    still_open = _still_open(session_id).with_only_columns(
        literal(session_id),
        literal(file_index),
        literal(offset),
        literal(length),
        literal(crc32c),
        literal(etag),
    )
    statement = insert(UploadSessionPart).from_select(
        ["session_id", "file_index", "part_offset", "length", "crc32c", "etag"], still_open
    )
    recorded = await session.execute(
        statement.on_conflict_do_update(
            index_elements=["session_id", "file_index", "part_offset"],
            set_={
                "length": statement.excluded.length,
                "crc32c": statement.excluded.crc32c,
                "etag": statement.excluded.etag,
                "received_at": func.now(),
            },
        ).returning(UploadSessionPart.session_id)
    )
    return recorded.first() is not None


async def forget_parts(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(
        delete(UploadSessionPart).where(UploadSessionPart.session_id == session_id)
    )


async def unfinished_since(session: AsyncSession, owner_id: uuid.UUID, since: datetime) -> int:
    """Sessions the owner created since `since` that have not become a version (each counts
    as an upload towards the daily limit; a completed one counts as its version)."""
    query = select(func.count()).where(
        UploadSession.owner_id == owner_id,
        UploadSession.created_at >= since,
        UploadSession.status != UploadSessionStatus.COMPLETED,
    )
    return int(await session.scalar(query) or 0)


async def to_sweep(
    session: AsyncSession, now: datetime, completing_before: datetime
) -> list[UploadSession]:
    """Open sessions past their expiry, whose model was deleted, or whose completion stopped
    (its process died) before `completing_before`; locked, skipping any another sweeper or a
    request holds."""
    model_gone = ~select(Model.id).where(Model.id == UploadSession.model_id).exists()
    rows = await session.scalars(
        select(UploadSession)
        .where(
            UploadSession.status == UploadSessionStatus.OPEN,
            # A completion under way finishes (or fails) on its own, past the expiry or not.
            (
                UploadSession.completing_since.is_(None)
                & ((UploadSession.expires_at < now) | model_gone)
            )
            | (UploadSession.completing_since < completing_before),
        )
        .with_for_update(skip_locked=True)
    )
    return list(rows)
