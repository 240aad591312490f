"""Keyset pages over a real PostgreSQL table: every row once, in order, whatever the order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import DateTime, Integer, MetaData, String, Uuid, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.pagination import CursorPart, InvalidCursor, SortKey, encode_cursor, keyset_page


class _Base(DeclarativeBase):
    metadata = MetaData()


class Item(_Base):
    __tablename__ = "pagination_test_items"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@pytest.fixture
async def items(engine: AsyncEngine) -> list[Item]:
    async with engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Ties on score and on created_at, so the tie-breaking keys matter.
    rows = [
        Item(
            id=uuid.UUID(int=i + 1),
            score=i % 3,
            name=f"n{i % 4}",
            created_at=start + timedelta(minutes=i // 2),
        )
        for i in range(23)
    ]
    async with AsyncSession(engine, expire_on_commit=False) as session:
        session.add_all(rows)
        await session.commit()
    yield rows
    async with engine.begin() as connection:
        await connection.run_sync(_Base.metadata.drop_all)


async def _all_pages(
    engine: AsyncEngine, keys: list[SortKey], limit: int
) -> tuple[list[uuid.UUID], int]:
    seen: list[uuid.UUID] = []
    cursor, pages = None, 0
    async with AsyncSession(engine) as session:
        while True:
            rows, cursor = await keyset_page(
                session, select(Item), keys, cursor=cursor, limit=limit
            )
            seen += [row.id for row in rows]
            pages += 1
            if cursor is None:
                return seen, pages


@pytest.mark.parametrize(
    ("keys", "python_order"),
    [
        pytest.param(
            [
                SortKey(Item.created_at, CursorPart.TIMESTAMP, True),
                SortKey(Item.id, CursorPart.UUID, True),
            ],
            lambda i: (-i.created_at.timestamp(), -i.id.int),
            id="newest first",
        ),
        pytest.param(
            [SortKey(Item.score, CursorPart.INT64), SortKey(Item.id, CursorPart.UUID)],
            lambda i: (i.score, i.id.int),
            id="ascending",
        ),
        pytest.param(
            [
                SortKey(Item.score, CursorPart.INT64, True),
                SortKey(Item.name, CursorPart.TEXT),
                SortKey(Item.id, CursorPart.UUID, True),
            ],
            lambda i: (-i.score, i.name, -i.id.int),
            id="mixed directions",
        ),
    ],
)
@pytest.mark.parametrize("limit", [1, 5, 23, 50])
async def test_pages_visit_every_row_once_in_order(engine, items, keys, python_order, limit):
    seen, pages = await _all_pages(engine, keys, limit)
    assert seen == [i.id for i in sorted(items, key=python_order)]
    assert pages == max(1, -(-len(items) // limit))


async def test_forged_cursors_are_refused_before_the_query(engine, items):
    keys = [SortKey(Item.score, CursorPart.INT64), SortKey(Item.id, CursorPart.UUID)]
    async with AsyncSession(engine) as session:
        for cursor in (
            encode_cursor("x", "y"),
            encode_cursor(1),
            "not base64!",
            encode_cursor(1, "u"),
        ):
            with pytest.raises(InvalidCursor):
                await keyset_page(session, select(Item), keys, cursor=cursor, limit=5)
