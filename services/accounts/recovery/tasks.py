"""Background jobs of the recovery domain (listed in services/accounts/worker.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.accounts.recovery import repository
from shared.db import session_scope, utcnow


async def purge_expired_account_tokens(ctx: dict[str, Any]) -> int:
    """Delete mailed tokens that expired over a day ago (used or not): they can do nothing."""
    async with session_scope(ctx["sessionmaker"]) as session:
        return await repository.delete_expired_before(session, utcnow() - timedelta(days=1))
