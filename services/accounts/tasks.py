"""Background jobs of the accounts service."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from services.accounts.models import RefreshToken
from shared.db import session_scope, utcnow


async def purge_expired_refresh_tokens(ctx: dict[str, Any]) -> int:
    """Delete refresh tokens that expired over a day ago; reuse detection no longer needs them."""
    cutoff = utcnow() - timedelta(days=1)
    async with session_scope(ctx["sessionmaker"]) as session:
        result = await session.execute(delete(RefreshToken).where(RefreshToken.expires_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
