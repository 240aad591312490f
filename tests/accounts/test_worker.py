"""The accounts worker runs the revocation sync as a cron job every configured interval."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from pydantic import ValidationError

from services.accounts.auth.tasks import sync_revocation_keys
from services.accounts.config import AccountsSettings
from services.accounts.worker import accounts_worker_settings
from tests.conftest import Platform


def _sync_cron_gaps(platform: Platform, seconds: int) -> set[float]:
    settings = AccountsSettings(
        **platform.common,
        jwt_private_key_file=platform.jwt_key_file,
        revocation_sync_seconds=seconds,
    )
    worker = accounts_worker_settings(settings)
    (job,) = [j for j in worker["cron_jobs"] if j.coroutine is sync_revocation_keys]
    assert job.run_at_startup
    runs: list[datetime] = []
    at = datetime(2026, 12, 2, 10, 0, 0)
    for _ in range(8):
        job.calculate_next(at)
        assert job.next_run is not None
        runs.append(job.next_run)
        at = job.next_run
    return {(b - a).total_seconds() for a, b in itertools.pairwise(runs)}


def test_the_worker_syncs_every_configured_interval(platform):
    assert _sync_cron_gaps(platform, 60) == {60}
    assert _sync_cron_gaps(platform, 15) == {15}
    assert _sync_cron_gaps(platform, 300) == {300}


def test_an_interval_arq_cron_cannot_keep_is_refused_with_what_to_use(platform):
    with pytest.raises(ValidationError, match="must divide a minute evenly"):
        AccountsSettings(
            **platform.common,
            jwt_private_key_file=platform.jwt_key_file,
            revocation_sync_seconds=45,
        )
