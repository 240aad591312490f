"""arq worker of the accounts service: `arq services.accounts.worker.WorkerSettings`."""

from __future__ import annotations

from typing import Any

from arq import cron

from services.accounts.config import AccountsSettings
from services.accounts.tasks import purge_expired_refresh_tokens
from shared.jobs import worker_settings


def __getattr__(name: str) -> Any:
    # `arq services.accounts.worker.WorkerSettings` reads the environment only when run.
    if name == "WorkerSettings":
        return worker_settings(
            AccountsSettings(),
            queue_name="llmnet:accounts",
            functions=[purge_expired_refresh_tokens],
            cron_jobs=[
                cron(purge_expired_refresh_tokens, hour={3}, minute={17}, run_at_startup=False)
            ],
        )
    raise AttributeError(name)
