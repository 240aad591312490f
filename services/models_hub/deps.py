"""Per-process resources of the model hub, and the dependency that hands them out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from arq import ArqRedis
from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.models_hub.config import ModelsHubSettings
from shared.accounts_client import AccountsClient
from shared.secrets_box import SecretBox
from shared.storage import Storage


@dataclass(frozen=True, slots=True)
class HubContext:
    settings: ModelsHubSettings
    storage: Storage
    accounts: AccountsClient
    jobs: ArqRedis
    secrets: SecretBox
    sessionmaker: async_sessionmaker[AsyncSession]
    # Streams of fine-tune events (decode_responses=True).
    redis: Redis


async def _context(request: Request) -> HubContext:
    context: HubContext = request.app.state.hub
    return context


HubDep = Annotated[HubContext, Depends(_context)]
