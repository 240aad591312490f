"""Per-process resources of the inference service, and the dependency that hands them out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.inference.config import InferenceSettings
from services.inference.engine.registry import ModelRegistry
from shared.models_client import ModelsClient


@dataclass(frozen=True, slots=True)
class InferenceContext:
    settings: InferenceSettings
    registry: ModelRegistry
    models: ModelsClient
    redis: Redis
    sessionmaker: async_sessionmaker[AsyncSession]
    remote: httpx.AsyncClient  # to external providers


async def _context(request: Request) -> InferenceContext:
    context: InferenceContext = request.app.state.inference
    return context


InferenceDep = Annotated[InferenceContext, Depends(_context)]
