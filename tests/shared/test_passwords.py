"""argon2id hashing that keeps the event loop free."""

from __future__ import annotations

import asyncio

from shared.auth.passwords import PasswordHasher


async def test_hash_is_argon2id_and_verifies():
    hasher = PasswordHasher()
    hashed = await hasher.hash("s3cret-password")
    assert hashed.startswith("$argon2id$")
    assert await hasher.verify("s3cret-password", hashed)
    assert not await hasher.verify("wrong-password", hashed)
    assert not await hasher.verify("s3cret-password", None)  # unknown user


async def test_hashing_does_not_block_the_event_loop():
    hasher = PasswordHasher(concurrency=2, time_cost=4)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(4)))
    done.set()
    await task
    assert ticks > 5  # the loop kept running while four hashes were computed


async def test_overlong_passwords_never_verify():
    hasher = PasswordHasher(max_length=16)
    hashed = await hasher.hash("short-enough-1")
    assert not await hasher.verify("x" * 17, hashed)
