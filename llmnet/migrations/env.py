"""Alembic environment for the single shared database (async engine)."""

from __future__ import annotations

import asyncio
import importlib
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.db import Base
from shared.settings import CommonSettings

# Every module that defines tables: autogenerate must see the whole schema.
TABLE_MODULES = (
    "shared.events.models",
    "services.accounts.models",
    "services.models_hub.models",
    "services.inference.models",
    "services.feed.models",
)
for module in TABLE_MODULES:
    importlib.import_module(module)

target_metadata = Base.metadata


def _database_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("Set DATABASE_URL (or sqlalchemy.url) to run migrations.")
    return CommonSettings._asyncpg_driver(url)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_database_url(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
