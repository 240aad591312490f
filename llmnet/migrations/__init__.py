"""The one alembic history of the shared database, and its entry points.

Exports:
    upgrade_head(database_url): apply every migration (synchronous).
    downgrade_base(database_url): undo them all.
    alembic_config(database_url) -> Config: for other alembic commands.

``env.py`` imports every service's tables so autogenerate sees the whole schema; that is why
the history lives here, in the platform layer, and not in ``shared/``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "alembic_config", "downgrade_base", "upgrade_head"]

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would treat '%' in passwords as syntax.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_head(database_url: str) -> None:
    """Apply every migration. Synchronous: call it from a thread inside an event loop."""
    command.upgrade(alembic_config(database_url), "head")


def downgrade_base(database_url: str) -> None:
    command.downgrade(alembic_config(database_url), "base")
