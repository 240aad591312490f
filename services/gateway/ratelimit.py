"""Per-request admission: rate limit plus ban/revocation check, in one Redis round trip.

Fixed one-minute windows per subject (user, API key's user, or anonymous IP). A fixed window
can let through up to twice the limit across a window boundary; that is acceptable for abuse
protection and costs two commands instead of a sorted-set scan.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.gateway.auth import Authenticated
from shared.errors import Forbidden, ServiceUnavailable, TooManyRequests, Unauthorized

WINDOW_SECONDS = 60


async def admit(
    redis: Redis, *, subject: str, limit: int, auth: Authenticated | None = None
) -> None:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = f"llmnet:rl:{subject}:{window}"
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 1)
            if auth is not None:
                pipe.exists(auth.banned_key)
                if auth.revoked_key:
                    pipe.exists(auth.revoked_key)
            results = await pipe.execute()
    except RedisError as exc:
        # Fail closed: without Redis we cannot tell a banned user from a good one.
        raise ServiceUnavailable(
            "Request admission is unavailable; try again shortly.",
            retry_after=2,
            code="admission_unavailable",
        ) from exc
    if auth is not None:
        if results[2]:
            raise Forbidden("This account is banned.", code="account_banned")
        if auth.revoked_key and results[3]:
            raise Unauthorized("This login was revoked; log in again.", code="token_revoked")
    if results[0] > limit:
        retry_after = int((window + 1) * WINDOW_SECONDS - now) + 1
        raise TooManyRequests(
            f"Rate limit of {limit} requests per minute exceeded; retry in {retry_after} s.",
            retry_after=retry_after,
        )
