"""Background jobs of the accounts service."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from services.accounts.auth.revocation_sync import sync_revocations
from services.accounts.config import AccountsSettings
from services.accounts.models import RefreshToken
from shared.db import session_scope, utcnow


async def purge_expired_refresh_tokens(ctx: dict[str, Any]) -> int:
    """Delete refresh tokens that expired over a day ago; reuse detection no longer needs them."""
    cutoff = utcnow() - timedelta(days=1)
    async with session_scope(ctx["sessionmaker"]) as session:
        result = await session.execute(delete(RefreshToken).where(RefreshToken.expires_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def sync_revocation_keys(ctx: dict[str, Any]) -> dict[str, int]:
    """Rewrite the ban and revoked-login keys the gateway checks from the database, so that
    writes a Redis outage or restart lost take effect again (cron, every
    ACCOUNTS_REVOCATION_SYNC_SECONDS)."""
    settings: AccountsSettings = ctx["settings"]
    result = await sync_revocations(
        ctx["sessionmaker"],
        ctx["redis"],
        access_token_ttl_seconds=settings.access_token_ttl_seconds,
    )
    return asdict(result)
