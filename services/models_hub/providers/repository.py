"""Queries on providers; nothing else in the hub writes SQL for them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.models import Model, Provider


async def get_provider(session: AsyncSession, provider_id: uuid.UUID) -> Provider | None:
    return await session.get(Provider, provider_id)


async def list_owned(session: AsyncSession, owner_id: uuid.UUID) -> list[Provider]:
    rows = await session.scalars(
        select(Provider).where(Provider.owner_id == owner_id).order_by(Provider.name)
    )
    return list(rows)


async def model_ids(
    session: AsyncSession, provider_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The models each provider serves, in one statement."""
    served: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if provider_ids:
        rows = await session.execute(
            select(Model.provider_id, Model.id).where(Model.provider_id.in_(provider_ids))
        )
        for provider_id, model_id in rows:
            if provider_id is not None:  # it is: the query asks for it
                served[provider_id].append(model_id)
    return served


async def add_provider(session: AsyncSession, provider: Provider) -> Provider:
    """Insert `provider` now (its id is needed)."""
    session.add(provider)
    await session.flush()
    return provider


async def reload(session: AsyncSession, provider: Provider) -> None:
    """Read back what the database set (created_at, updated_at)."""
    await session.refresh(provider)


async def save(session: AsyncSession, provider: Provider) -> None:
    """Write the provider's changes now, and read back its new updated_at."""
    await session.flush()
    await session.refresh(provider)


async def delete_provider(session: AsyncSession, provider: Provider) -> None:
    await session.delete(provider)  # its models go with it (ON DELETE CASCADE)
