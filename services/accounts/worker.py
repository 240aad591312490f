"""arq worker of the accounts service: `arq services.accounts.worker.WorkerSettings`.

Beside its cron jobs it runs the consumer group that mails verification and password reset
links (recovery/consumer.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq import cron

from services.accounts.auth.tasks import purge_expired_refresh_tokens, sync_revocation_keys
from services.accounts.config import AccountsSettings
from services.accounts.mail import Mailer
from services.accounts.recovery.consumer import mail_consumer
from services.accounts.recovery.service import MailContext
from services.accounts.recovery.tasks import purge_expired_account_tokens
from shared.jobs import worker_settings
from shared.redis_client import create_redis


def every(seconds: int) -> tuple[set[int] | None, set[int]]:
    """The (minute, second) fields of an arq cron job firing every `seconds`. arq cron matches
    wall-clock minutes and seconds, so the interval must split a minute or an hour evenly
    (AccountsSettings validates that)."""
    if 60 % seconds == 0:
        return None, set(range(0, 60, seconds))
    return set(range(0, 60, seconds // 60)), {0}


async def startup(ctx: dict[str, Any]) -> None:
    settings: AccountsSettings = ctx["settings"]
    ctx["events_redis"] = create_redis(settings.redis_url)
    ctx["mail"] = MailContext(
        settings=settings, sessionmaker=ctx["sessionmaker"], mailer=Mailer(settings)
    )
    ctx["mail_consumer"] = mail_consumer(ctx)
    ctx["mail_task"] = asyncio.create_task(ctx["mail_consumer"].run(), name="mail-consumer")


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["mail_consumer"].stop()
    if not ctx["mail_task"].done():
        ctx["mail_task"].cancel()  # best effort; awaiting it could hang (see EventConsumer)
    await ctx["events_redis"].aclose()


def accounts_worker_settings(settings: AccountsSettings) -> dict[str, Any]:
    sync_minute, sync_second = every(settings.revocation_sync_seconds)
    return worker_settings(
        settings,
        queue_name="llmnet:accounts",
        functions=[
            purge_expired_refresh_tokens,
            sync_revocation_keys,
            purge_expired_account_tokens,
        ],
        startup=startup,
        shutdown=shutdown,
        cron_jobs=[
            cron(purge_expired_refresh_tokens, hour={3}, minute={17}, run_at_startup=False),
            cron(purge_expired_account_tokens, hour={3}, minute={27}, run_at_startup=False),
            # Also at start-up: a worker restarted with Redis repairs it without waiting.
            cron(
                sync_revocation_keys,
                minute=sync_minute,
                second=sync_second,
                run_at_startup=True,
            ),
        ],
    )


def __getattr__(name: str) -> Any:
    # `arq services.accounts.worker.WorkerSettings` reads the environment only when run.
    if name == "WorkerSettings":
        return accounts_worker_settings(AccountsSettings())
    raise AttributeError(name)
