"""Background jobs of the auth domain (listed in services/accounts/worker.py)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from services.accounts.auth import repository
from services.accounts.auth.revocation import revocation_service
from services.accounts.config import AccountsSettings
from shared.db import session_scope, utcnow


async def purge_expired_refresh_tokens(ctx: dict[str, Any]) -> int:
    """Delete refresh tokens that expired over a day ago; reuse detection no longer needs them."""
    async with session_scope(ctx["sessionmaker"]) as session:
        return await repository.delete_expired_before(session, utcnow() - timedelta(days=1))


async def sync_revocation_keys(ctx: dict[str, Any]) -> dict[str, int]:
    """Rewrite the ban and revoked-login keys the gateway checks from the database, so that
    writes a Redis outage or restart lost take effect again (cron, every
    ACCOUNTS_REVOCATION_SYNC_SECONDS)."""
    settings: AccountsSettings = ctx["settings"]
    result = await revocation_service.sync(
        ctx["sessionmaker"],
        ctx["redis"],
        access_token_ttl_seconds=settings.access_token_ttl_seconds,
    )
    return asdict(result)
