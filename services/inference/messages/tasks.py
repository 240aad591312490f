"""arq jobs of messages: the sweeper that ends answers whose generating process died."""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.inference.config import InferenceSettings
from services.inference.messages import buffer, repository
from services.inference.messages.generation import ORPHANED, finalise_orphan
from services.inference.models import MessageStatus
from shared.db import session_scope

logger = logging.getLogger("llmnet.inference.messages")

SWEEP_BATCH = 500


async def sweep_orphans(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession], settings: InferenceSettings
) -> int:
    """Fail every streaming answer whose lease expired, with the text its stream buffered."""
    async with session_scope(sessionmaker) as session:
        streaming = await repository.streaming(session, SWEEP_BATCH)
    swept = 0
    for message_id in streaming:
        if await buffer.lease_alive(redis, message_id):
            continue
        message = await finalise_orphan(
            redis, sessionmaker, settings, message_id, MessageStatus.FAILED, ORPHANED
        )
        if message is not None:
            swept += 1
            logger.warning("answer %s had no live owner: failed with its partial text", message_id)
    return swept


async def sweep_messages(ctx: dict[str, Any]) -> int:
    """Cron of the inference worker."""
    return await sweep_orphans(ctx["redis"], ctx["sessionmaker"], ctx["settings"])
