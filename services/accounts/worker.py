"""arq worker of the accounts service: `arq services.accounts.worker.WorkerSettings`."""

from __future__ import annotations

from typing import Any

from arq import cron

from services.accounts.auth.tasks import purge_expired_refresh_tokens, sync_revocation_keys
from services.accounts.config import AccountsSettings
from shared.jobs import worker_settings


def every(seconds: int) -> tuple[set[int] | None, set[int]]:
    """The (minute, second) fields of an arq cron job firing every `seconds`. arq cron matches
    wall-clock minutes and seconds, so the interval must split a minute or an hour evenly
    (AccountsSettings validates that)."""
    if 60 % seconds == 0:
        return None, set(range(0, 60, seconds))
    return set(range(0, 60, seconds // 60)), {0}


def accounts_worker_settings(settings: AccountsSettings) -> dict[str, Any]:
    sync_minute, sync_second = every(settings.revocation_sync_seconds)
    return worker_settings(
        settings,
        queue_name="llmnet:accounts",
        functions=[purge_expired_refresh_tokens, sync_revocation_keys],
        cron_jobs=[
            cron(purge_expired_refresh_tokens, hour={3}, minute={17}, run_at_startup=False),
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
