"""What the platform command (`llmnet seed`, `llmnet run`) asks of the model hub at start-up.

`seed_demo` is the hub's one bootstrap entry point: it builds the hub's resources from its
settings, seeds the public demo model (services/models_hub/seed.py) and releases them, so the
command needs nothing of the hub's internals. The demo model's owner (the system account) is
the accounts service's to provide.
"""

from __future__ import annotations

import uuid

from services.models_hub.config import ModelsHubSettings
from services.models_hub.resources import build_context, close_context
from services.models_hub.seed import seed_demo_model
from shared.db import create_engine, create_sessionmaker

__all__ = ["seed_demo"]


async def seed_demo(settings: ModelsHubSettings, owner_id: uuid.UUID, owner_name: str) -> str:
    """Seed the demo model owned by `owner_id` (username `owner_name`); idempotent. Returns
    what happened: "seeded", "exists" or "skipped: <why>"."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        context = await build_context(settings, create_sessionmaker(engine))
        try:
            return await seed_demo_model(context, owner_id, owner_name)
        finally:
            await close_context(context)
    finally:
        await engine.dispose()
