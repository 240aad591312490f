"""Rewrites the Redis revocation state the gateway checks from the database.

Bans and revoked logins reach the gateway through Redis keys written after their commit
(`shared.auth.revocation`). A Redis that is down at that moment, or comes back empty, would
lose them: a banned user, or a logged-out login, would keep working. The database is the
source of truth, so this reconciliation runs at start-up and every few seconds in the worker:

- every banned user's key is set, and ban keys of users no longer banned are removed (an
  unban whose delete was lost must not lock the user out for ever);
- every token family revoked within the last access-token lifetime gets its key back, for
  what is left of that lifetime; older families can have no live access token.

One query per kind, pipelined writes in batches, SCAN (never KEYS) for the ban keys.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.accounts.models import RefreshToken, User
from shared.auth.revocation import banned_user_key, revoked_family_key
from shared.db import session_scope, utcnow

logger = logging.getLogger("llmnet.accounts.revocation")

# Revoked-family keys outlive the family's last access token by this much, since the clocks
# of accounts, the gateway and Redis need not agree to the second.
REVOCATION_MARGIN_SECONDS = 60
# Commands per pipeline round trip: a long ban list is written without buffering it whole.
_BATCH = 1000
_BANNED_PREFIX = banned_user_key("")


@dataclass(frozen=True, slots=True)
class RevocationSync:
    """What one reconciliation found and repaired."""

    banned_users: int
    bans_restored: int
    bans_lifted: int
    revoked_families: int
    families_restored: int

    @property
    def repaired(self) -> bool:
        return bool(self.bans_restored or self.bans_lifted or self.families_restored)


async def _ban_keys(redis: Redis) -> set[str]:
    """User ids that have a ban key now (the worker's arq client answers bytes)."""
    found: set[str] = set()
    async for key in redis.scan_iter(match=banned_user_key("*"), count=_BATCH):
        name = key.decode() if isinstance(key, bytes) else str(key)
        found.add(name.removeprefix(_BANNED_PREFIX))
    return found


async def _banned_users(session: AsyncSession) -> set[str]:
    # `WHERE is_banned` (not `IS TRUE`) so the planner uses the partial index ix_users_banned.
    ids = await session.scalars(select(User.id).where(User.is_banned))
    return {str(user_id) for user_id in ids}


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:  # a stray key under the prefix: it is removed, nobody is banned by it
        return None


async def _still_banned(session: AsyncSession, user_ids: list[str]) -> set[str]:
    candidates = [u for u in map(_as_uuid, user_ids) if u is not None]
    ids = await session.scalars(select(User.id).where(User.is_banned, User.id.in_(candidates)))
    return {str(user_id) for user_id in ids}


async def _revoked_families(
    session: AsyncSession, since: datetime
) -> list[tuple[uuid.UUID, datetime]]:
    """Families revoked after `since`, with the last time any of their tokens was revoked."""
    rows = await session.execute(
        select(RefreshToken.family_id, func.max(RefreshToken.revoked_at))
        .where(RefreshToken.revoked_at.is_not(None), RefreshToken.revoked_at > since)
        .group_by(RefreshToken.family_id)
    )
    return [(family_id, at) for family_id, at in rows if at is not None]


async def _set_missing(redis: Redis, keys: list[tuple[str, int | None]]) -> int:
    """SET NX each (key, ttl); returns how many were missing (and are now set)."""
    restored = 0
    for start in range(0, len(keys), _BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for key, ttl in keys[start : start + _BATCH]:
                pipe.set(key, "1", ex=ttl, nx=True)
            restored += sum(1 for done in await pipe.execute() if done)
    return restored


async def _delete(redis: Redis, keys: list[str]) -> None:
    for start in range(0, len(keys), _BATCH):
        await redis.delete(*keys[start : start + _BATCH])


async def sync_revocations(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    *,
    access_token_ttl_seconds: int,
) -> RevocationSync:
    """Make Redis's ban and revoked-family keys match the database."""
    # Redis is scanned before the database is read: a ban committed in between has its key
    # written after its commit, so any ban key seen here belongs to a ban the query below
    # sees as well, and is never deleted by mistake. An unban racing the other way leaves
    # the key set until the next run, failing closed.
    had_ban_key = await _ban_keys(redis)
    lifetime = timedelta(seconds=access_token_ttl_seconds + REVOCATION_MARGIN_SECONDS)
    now = utcnow()
    async with session_scope(sessionmaker) as session:
        banned = await _banned_users(session)
        families = await _revoked_families(session, now - lifetime)

    bans_restored = await _set_missing(
        redis, [(banned_user_key(user_id), None) for user_id in banned - had_ban_key]
    )
    lifted = sorted(had_ban_key - banned)
    if lifted:
        await _delete(redis, [banned_user_key(user_id) for user_id in lifted])
        # A user banned again since the query may have written its key just before this
        # delete removed it: read once more. A ban committed after this read writes its key
        # after the delete, so none is lost.
        async with session_scope(sessionmaker) as session:
            banned_again = await _still_banned(session, lifted)
        await _set_missing(redis, [(banned_user_key(user_id), None) for user_id in banned_again])
        lifted = [user_id for user_id in lifted if user_id not in banned_again]
    family_keys: list[tuple[str, int | None]] = []
    for family_id, revoked_at in families:
        left = math.ceil((revoked_at + lifetime - now).total_seconds())
        if left > 0:
            family_keys.append((revoked_family_key(str(family_id)), left))
    families_restored = await _set_missing(redis, family_keys)

    result = RevocationSync(
        banned_users=len(banned),
        bans_restored=bans_restored,
        bans_lifted=len(lifted),
        revoked_families=len(family_keys),
        families_restored=families_restored,
    )
    if result.repaired:
        # Redis had lost writes (an outage, a restart without persistence): worth a look.
        logger.warning(
            "revocation sync repaired Redis: %d bans restored, %d stale bans lifted, "
            "%d revoked logins restored",
            bans_restored,
            len(lifted),
            families_restored,
            extra={
                "fields": {
                    "bans_restored": bans_restored,
                    "bans_lifted": len(lifted),
                    "families_restored": families_restored,
                }
            },
        )
    return result
