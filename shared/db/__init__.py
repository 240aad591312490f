"""Database access: the declarative Base, engine and session factories, and the
request-scoped session.

Exports: Base, create_engine, create_sessionmaker, session_scope, after_commit, get_session,
SessionDep, utcnow, one_of, sql_values, DatabaseUnavailable.

One transaction per request: `SessionDep` commits when the handler returns and rolls back on
any exception; services and repositories never commit, they `flush()` when they need ids.
Work that must only happen once the data is durable (enqueueing jobs, waking the event relay,
cache invalidation) is registered with `after_commit`.

The engine is the one boundary where a database that cannot be reached (refused, timed out,
shut down, connection lost) is translated: it raises `DatabaseUnavailable` (503 with
Retry-After) instead of driver errors, for requests, jobs and background loops alike.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import CheckConstraint, MetaData, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from shared.errors import ServiceUnavailable

logger = logging.getLogger("llmnet.db")

# Loopback or LAN: a server that has not answered a connect in 5 s is not going to.
CONNECT_TIMEOUT_SECONDS = 5.0
# Longest single statement; past it the query is cancelled and the caller gets a 503.
COMMAND_TIMEOUT_SECONDS = 30.0
# Waiting for a free pooled connection when every one is busy.
POOL_TIMEOUT_SECONDS = 10.0
RETRY_AFTER_SECONDS = 2

# Driver errors that mean "the server is not there" rather than "this statement is wrong":
# refused/reset sockets and timeouts, class 08 (connection exception), 57 (operator
# intervention: shutdown, starting up, statement cancelled) and too many connections.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
)

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


def sql_values(values: type[StrEnum]) -> str:
    """An enum's values as a SQL list body: `'a', 'b'`."""
    return ", ".join(repr(member.value) for member in values)


def one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    """CHECK that `column` holds a member of `values` (or NULL); named ck_<table>_<column>_valid
    by the naming convention, so the migration and the model agree."""
    return CheckConstraint(f"{column} IN ({sql_values(values)})", name=f"{column}_valid")


def utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"

    def __init__(self, detail: str = "The database is unavailable; try again shortly.") -> None:
        super().__init__(detail, retry_after=RETRY_AFTER_SECONDS)


def _is_unavailable(exc: BaseException | None) -> bool:
    # The dialect wraps asyncpg's error in its own, itself wrapped by SQLAlchemy: look down
    # the chain of causes.
    for _ in range(4):
        if exc is None:
            return False
        if isinstance(exc, _UNAVAILABLE_ERRORS):
            return True
        exc = exc.__cause__ or getattr(exc, "orig", None)
    return False


def _translate_unavailable(context: ExceptionContext) -> BaseException | None:
    """`handle_error` hook: a lost connection or a timed-out statement becomes a 503."""
    if context.is_pre_ping:
        # The pool's liveness probe: SQLAlchemy reconnects on its own when it fails.
        return None
    if not isinstance(context.original_exception, Exception):
        # A cancelled task (SQLAlchemy counts it as a disconnect) must stay cancelled.
        return None
    if context.is_disconnect or _is_unavailable(context.original_exception):
        return DatabaseUnavailable()
    return None


def create_engine(
    url: str,
    *,
    pool_size: int = 20,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    command_timeout: float = COMMAND_TIMEOUT_SECONDS,
    pool_timeout: float = POOL_TIMEOUT_SECONDS,
) -> AsyncEngine:
    engine: AsyncEngine

    async def connect() -> asyncpg.Connection:
        # Our own connect, so that failing to reach the server raises DatabaseUnavailable:
        # SQLAlchemy passes socket errors from connecting through untranslated.
        _, params = engine.sync_engine.dialect.create_connect_args(engine.url)
        params.pop("prepared_statement_cache_size", None)  # an adapter option, not asyncpg's
        params.update(timeout=connect_timeout, command_timeout=command_timeout)
        try:
            connection: asyncpg.Connection = await asyncpg.connect(**params)
        except _UNAVAILABLE_ERRORS as exc:
            raise DatabaseUnavailable() from exc
        return connection

    # pre_ping: a pooled connection that died with a database restart is replaced, not used.
    # No overflow: connections are opened as load needs them and then kept, since an overflow
    # connection is closed on return, and under a burst that means a new connection (and an
    # empty prepared-statement cache) for every other session.
    engine = create_async_engine(
        url,
        async_creator=connect,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
    )
    event.listen(engine.sync_engine, "handle_error", _translate_unavailable)
    return engine


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
        except BaseException as exc:
            await session.rollback()
            if isinstance(exc, PoolTimeout):
                # Every pooled connection stayed busy for pool_timeout: overloaded, not broken.
                raise DatabaseUnavailable("The database is busy; try again shortly.") from exc
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
