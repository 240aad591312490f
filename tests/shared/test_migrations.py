"""One alembic history: upgrade on an empty database, downgrade to base, upgrade again."""

from __future__ import annotations

import asyncio

import asyncpg

from llmnet.migrations import downgrade_base, upgrade_head
from shared.testing import create_database, drop_database
from tests.conftest import ADMIN_DATABASE_URL


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


async def test_upgrade_downgrade_upgrade():
    url = await create_database(ADMIN_DATABASE_URL, prefix="llmnet_migrations")
    try:
        await asyncio.to_thread(upgrade_head, url)
        tables = await _tables(url)
        assert {
            "users",
            "user_follows",
            "refresh_tokens",
            "api_keys",
            "audit_records",
            "event_outbox",
        } <= tables
        await asyncio.to_thread(downgrade_base, url)
        assert await _tables(url) == {"alembic_version"}
        await asyncio.to_thread(upgrade_head, url)
        assert await _tables(url) == tables
    finally:
        await drop_database(ADMIN_DATABASE_URL, url)


async def test_head_has_every_check_constraint_the_models_declare(database_url):
    """A CHECK declared in models.py but missing from the migrations would hold in tests that
    build tables from the models and not in production."""
    from sqlalchemy import CheckConstraint

    from shared.db import Base

    declared = {
        str(constraint.name)
        for table in Base.metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    connection = await asyncpg.connect(
        database_url.replace("postgresql+asyncpg://", "postgresql://")
    )
    try:
        rows = await connection.fetch("SELECT conname FROM pg_constraint WHERE contype = 'c'")
    finally:
        await connection.close()
    assert declared
    assert declared <= {row["conname"] for row in rows}
