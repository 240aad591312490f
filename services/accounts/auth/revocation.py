"""Revocations the gateway enforces: logouts, reused refresh tokens and bans.

The database is the source of truth; the gateway checks Redis keys (`shared.auth.revocation`)
on every request. `revocation_service` revokes in the request's transaction and writes the key
after the commit. A Redis that is down at that moment, or comes back empty, would lose the key:
a banned user, or a logged-out login, would keep working. So `revocation_service.sync`
rewrites Redis from the database at start-up and every few seconds in the worker:

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.accounts.auth import repository
from services.accounts.deps import AccountsContext
from services.accounts.users import repository as users
from shared.auth.revocation import banned_user_key, revoked_family_key
from shared.db import after_commit, session_scope, utcnow

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


def _publish_after_commit(
    session: AsyncSession,
    write: Callable[[], Awaitable[object]],
    *,
    what: str,
    fields: dict[str, str],
) -> None:
    """Run the Redis `write` once the revocation has committed. If Redis refuses, the
    revocation stands all the same: the sync publishes it once Redis answers again."""

    async def publish() -> None:
        try:
            await write()
        except RedisError as exc:
            logger.warning(
                "could not publish %s to Redis (%s); the revocation sync will",
                what,
                exc,
                extra={"fields": fields},
            )

    after_commit(session, publish)


class RevocationService:
    async def revoke_login(
        self, session: AsyncSession, ctx: AccountsContext, family_id: uuid.UUID
    ) -> None:
        """End one login: its refresh tokens now, its access tokens once this commits."""
        await repository.revoke_family(session, family_id)
        key = revoked_family_key(str(family_id))
        # Access tokens of the family live at most this long; the key outlives them all.
        ttl = ctx.settings.access_token_ttl_seconds + REVOCATION_MARGIN_SECONDS
        _publish_after_commit(
            session,
            lambda: ctx.redis.set(key, "1", ex=ttl),
            what=f"the revocation of token family {family_id}",
            fields={"family_id": str(family_id)},
        )

    async def ban(self, session: AsyncSession, ctx: AccountsContext, user_id: uuid.UUID) -> None:
        """Revoke every login of a user being banned; once this commits, the gateway refuses
        their tokens and keys."""
        await repository.revoke_all_of_user(session, user_id)
        key = banned_user_key(str(user_id))
        _publish_after_commit(
            session,
            lambda: ctx.redis.set(key, "1"),
            what=f"the ban of user {user_id}",
            fields={"user_id": str(user_id)},
        )

    def lift_ban(self, session: AsyncSession, ctx: AccountsContext, user_id: uuid.UUID) -> None:
        key = banned_user_key(str(user_id))
        _publish_after_commit(
            session,
            lambda: ctx.redis.delete(key),
            what=f"the unban of user {user_id}",
            fields={"user_id": str(user_id)},
        )

    async def sync(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        *,
        access_token_ttl_seconds: int,
    ) -> RevocationSync:
        """Make Redis's ban and revoked-family keys match the database."""
        # Redis is scanned before the database is read: a ban committed in between has its
        # key written after its commit, so any ban key seen here belongs to a ban the query
        # below sees as well, and is never deleted by mistake. An unban racing the other way
        # leaves the key set until the next run, failing closed.
        had_ban_key = await _ban_keys(redis)
        lifetime = timedelta(seconds=access_token_ttl_seconds + REVOCATION_MARGIN_SECONDS)
        now = utcnow()
        async with session_scope(sessionmaker) as session:
            banned = await users.banned_user_ids(session)
            families = await repository.families_revoked_since(session, now - lifetime)

        bans_restored = await _set_missing(
            redis, [(banned_user_key(user_id), None) for user_id in banned - had_ban_key]
        )
        lifted = sorted(had_ban_key - banned)
        if lifted:
            await _delete(redis, [banned_user_key(user_id) for user_id in lifted])
            # A user banned again since the query may have written its key just before this
            # delete removed it: read once more. A ban committed after this read writes its
            # key after the delete, so none is lost.
            candidates = [u for u in map(_as_uuid, lifted) if u is not None]
            async with session_scope(sessionmaker) as session:
                banned_again = await users.banned_among(session, candidates)
            await _set_missing(
                redis, [(banned_user_key(user_id), None) for user_id in banned_again]
            )
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


async def _ban_keys(redis: Redis) -> set[str]:
    """User ids that have a ban key now (the worker's arq client answers bytes)."""
    found: set[str] = set()
    async for key in redis.scan_iter(match=banned_user_key("*"), count=_BATCH):
        name = key.decode() if isinstance(key, bytes) else str(key)
        found.add(name.removeprefix(_BANNED_PREFIX))
    return found


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:  # a stray key under the prefix: it is removed, nobody is banned by it
        return None


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


revocation_service = RevocationService()
