"""Password hashing with argon2id (passlib + argon2-cffi), off the event loop.

Hashing is deliberately slow, so it runs in worker threads behind a concurrency limit: a burst
of logins queues up instead of stalling every other request of the process.
"""

from __future__ import annotations

import anyio
from passlib.context import CryptContext

# OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
DEFAULT_MEMORY_KIB = 19_456
DEFAULT_TIME_COST = 2


class PasswordHasher:
    def __init__(
        self,
        *,
        concurrency: int = 4,
        max_length: int = 128,
        memory_kib: int = DEFAULT_MEMORY_KIB,
        time_cost: int = DEFAULT_TIME_COST,
    ) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__time_cost=time_cost,
            argon2__parallelism=1,
        )
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._max_length = max_length
        # Verified against when the user does not exist, so timing does not reveal usernames.
        self._dummy_hash = self._context.hash("not-a-real-password")

    def _check_length(self, password: str) -> None:
        if len(password) > self._max_length:
            raise ValueError(f"password longer than {self._max_length} characters")

    async def hash(self, password: str) -> str:
        self._check_length(password)
        return await anyio.to_thread.run_sync(self._context.hash, password, limiter=self._limiter)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        if len(password) > self._max_length:
            return False
        return (
            await anyio.to_thread.run_sync(
                self._context.verify,
                password,
                password_hash or self._dummy_hash,
                limiter=self._limiter,
            )
            and password_hash is not None
        )
