"""Per-process resources of the inference service, and the dependency that hands them out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import httpx
from arq import ArqRedis
from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.inference.config import InferenceSettings
from services.inference.engine.registry import ModelRegistry
from shared.accounts_client import AccountsClient
from shared.models_client import ModelsClient
from shared.storage import Storage

if TYPE_CHECKING:
    from services.inference.messages.generation import Generations


@dataclass(frozen=True, slots=True)
class InferenceContext:
    settings: InferenceSettings
    registry: ModelRegistry
    models: ModelsClient
    redis: Redis
    sessionmaker: async_sessionmaker[AsyncSession]
    remote: httpx.AsyncClient  # to external providers
    accounts: AccountsClient  # usernames of conversation participants
    storage: Storage  # attachments' originals (the registry keeps its own handle for weights)
    generations: Generations  # conversation answers running in this process
    jobs: ArqRedis  # the inference worker's queue (evaluations, prompt-lab A/B runs)


async def _context(request: Request) -> InferenceContext:
    context: InferenceContext = request.app.state.inference
    return context


InferenceDep = Annotated[InferenceContext, Depends(_context)]
