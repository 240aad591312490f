"""Per-process resources of the feed, and the dependency that hands them out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from arq import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.feed.config import FeedSettings
from services.feed.posts.inference import InferenceClient
from shared.models_client import ModelsClient


@dataclass(frozen=True, slots=True)
class FeedContext:
    settings: FeedSettings
    models: ModelsClient
    inference: InferenceClient
    jobs: ArqRedis
    sessionmaker: async_sessionmaker[AsyncSession]


async def _context(request: Request) -> FeedContext:
    context: FeedContext = request.app.state.feed
    return context


FeedDep = Annotated[FeedContext, Depends(_context)]
