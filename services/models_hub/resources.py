"""Building the model hub's per-process resources (shared by the app and the worker)."""

from __future__ import annotations

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.models_hub.config import ModelsHubSettings
from services.models_hub.deps import HubContext
from shared.accounts_client import AccountsClient
from shared.auth.service_credentials import ServiceName
from shared.jobs import create_job_pool
from shared.redis_client import create_redis
from shared.secrets_box import SecretBox
from shared.storage.factory import create_storage


async def build_context(
    settings: ModelsHubSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    jobs: ArqRedis | None = None,
) -> HubContext:
    return HubContext(
        settings=settings,
        storage=create_storage(settings),
        accounts=AccountsClient(
            settings.accounts_url, ServiceName.MODELS_HUB, settings.service_token
        ),
        jobs=jobs or await create_job_pool(settings.redis_url),
        secrets=SecretBox.from_setting(settings.secret_keys),
        sessionmaker=sessionmaker,
        redis=create_redis(settings.redis_url),
    )


async def close_context(context: HubContext, *, close_jobs: bool = True) -> None:
    await context.accounts.aclose()
    await context.redis.aclose()
    if close_jobs:
        await context.jobs.aclose()
