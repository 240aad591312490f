"""Database access: the declarative Base, engine and session factories, and the
request-scoped session.

Exports: Base, create_engine, create_sessionmaker, session_scope, after_commit, get_session,
SessionDep, utcnow. One transaction per request: `SessionDep` commits when the handler
returns and rolls back on any exception; services and repositories never commit, they
`flush()` when they need ids. Work that must only happen once the data is durable (enqueueing
jobs, waking the event relay, cache invalidation) is registered with `after_commit`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

logger = logging.getLogger("llmnet.db")

# Stable constraint names keep alembic migrations reproducible across databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AfterCommit = Callable[[], Awaitable[None]]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Server-generated values (created_at, onupdate timestamps) come back with RETURNING on
    # flush; otherwise they expire and reading them would be a lazy load, forbidden under async.
    __mapper_args__ = {"eager_defaults": True}


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    # pre_ping: a pooled connection that died with a database restart is replaced, not used.
    return create_async_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction has committed; dropped on rollback."""
    session.info.setdefault("after_commit", []).append(callback)


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on error, then run after-commit hooks."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            # The data is committed; a failed side effect must not turn success into an error.
            logger.exception("after-commit callback failed")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(request.app.state.sessionmaker) as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit is the
# client's error response rather than a 200 for data that was never stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
