"""Home timelines in Redis: one sorted set per person, filled on write by the fan-out.

Members are post ids scored by their publication time in microseconds (exact in a double),
newest kept up to `home_timeline_cap`. A sentinel member scored -1 marks a timeline as built
(an empty one too), so a missing key means cold or evicted: the reader rebuilds it from the
database, and the fan-out only writes to timelines that exist (a cold one gets the post from
the database when it is rebuilt).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

HOME_PREFIX = "llmnet:feed:home:"
_SENTINEL = "-"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Per key: add the post to a built timeline and trim it to the cap (the sentinel is rank 0).
_PUSH = """
local cap = tonumber(ARGV[3])
local written = 0
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('ZADD', key, ARGV[1], ARGV[2])
    local size = redis.call('ZCARD', key)
    if size > cap + 1 then
      redis.call('ZREMRANGEBYRANK', key, 1, size - cap - 1)
    end
    written = written + 1
  end
end
return written
"""

Entry = tuple[uuid.UUID, int]  # post id, microseconds since the epoch


def micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def moment(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def home_key(user_id: uuid.UUID) -> str:
    return f"{HOME_PREFIX}{user_id}"


async def drop_home(redis: Redis, user_id: uuid.UUID) -> None:
    await redis.delete(home_key(user_id))


async def fill_home(redis: Redis, user_id: uuid.UUID, entries: list[Entry], ttl: int) -> None:
    key = home_key(user_id)
    members: dict[str, float] = {_SENTINEL: -1, **{str(i): float(s) for i, s in entries}}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.zadd(key, members)
        pipe.expire(key, ttl)
        await pipe.execute()


async def home_slice(
    redis: Redis, user_id: uuid.UUID, before: Entry | None, count: int, ttl: int
) -> tuple[list[Entry], int] | None:
    """Up to `count` entries strictly older than `before` (newest first) and the timeline's
    size; None when the timeline is not built. Reading it keeps it from being evicted."""
    key = home_key(user_id)
    # Entries that tie with the cursor's time are read too, then dropped by id below.
    top = str(before[1]) if before else "+inf"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.expire(key, ttl)
        pipe.zrevrangebyscore(key, top, 0, start=0, num=count + 16, withscores=True)
        pipe.zcard(key)
        exists, rows, size = await pipe.execute()
    if not exists:
        return None
    entries: list[Entry] = []
    for member, score in rows:
        entry = (uuid.UUID(member), int(score))
        if before is None or (entry[1], str(entry[0])) < (before[1], str(before[0])):
            entries.append(entry)
    return entries[:count], int(size) - 1


async def push(redis: Redis, user_ids: list[uuid.UUID], entry: Entry, cap: int) -> int:
    """Add a post to the built timelines of `user_ids`; how many were written."""
    if not user_ids:
        return 0
    script = redis.register_script(_PUSH)
    keys = [home_key(u) for u in user_ids]
    return int(await script(keys=keys, args=[entry[1], str(entry[0]), cap]))
