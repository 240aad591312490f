"""A fine-tune worker killed mid-training: the sweeper ends the job `failed`, keeping nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from llmnet.launcher.supervisor import REPO_ROOT
from services.models_hub.fine_tunes.tasks import sweep_fine_tunes
from services.models_hub.resources import build_context, close_context
from shared.auth.service_credentials import ServiceName
from tests.conftest import INTERNAL_TOKEN, REDIS_URL, SECRET_BOX_KEY, SERVICE_TOKENS
from tests.models_hub.fine_tunes.conftest import fine_tune_settings, start_fine_tune

pytestmark = pytest.mark.timeout(180)


def _worker_env(platform, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        **os.environ,
        "DATABASE_URL": platform.common["database_url"],
        "REDIS_URL": REDIS_URL,
        "LLMNET_DATA_DIR": str(platform.common["data_dir"]),
        "INTERNAL_TOKEN": INTERNAL_TOKEN,
        "SERVICE_TOKEN": SERVICE_TOKENS[ServiceName.MODELS_HUB],
        "MODELS_HUB_SECRET_KEYS": SECRET_BOX_KEY,
        "MODELS_HUB_FINETUNE_PROGRESS_INTERVAL_SECONDS": "0",
        "MODELS_HUB_FINETUNE_HEARTBEAT_SECONDS": "0.5",
        "MODELS_HUB_FINETUNE_THREADS": "1",
        "LOG_JSON": "false",
    }


async def test_a_killed_worker_ends_the_job_failed(client, platform, owner, base, tmp_path):
    created = await start_fine_tune(client, owner, base["id"], epochs=100, batch_size=1)
    job_id = created.json()["id"]
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "arq",
            "services.models_hub.finetune_worker.WorkerSettings",
            env=_worker_env(platform, tmp_path),
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(600):
            job = (await client.get(f"/api/v1/fine-tunes/{job_id}", headers=owner.headers)).json()
            if job["progress"].get("step", 0) >= 2:
                break
            await asyncio.sleep(0.1)
        assert job["status"] == "running", log_path.read_text()
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()

    settings = fine_tune_settings(platform, finetune_lease_seconds=1)
    context = await build_context(settings, platform.sessionmaker)
    try:
        await asyncio.sleep(1.5)  # the lease runs out: nobody renews it
        assert (await sweep_fine_tunes({"hub": context}))["failed"] == 1
    finally:
        await close_context(context)
    job = (await client.get(f"/api/v1/fine-tunes/{job_id}", headers=owner.headers)).json()
    assert job["status"] == "failed"
    assert "worker stopped" in job["error"]
    assert job["result_version_id"] is None
    stored = platform.common["data_dir"] / "storage" / f"models/{base['id']}/versions"
    assert sorted(p.name for p in stored.iterdir()) == [base["version_id"]]
    # Nor does the killed worker's scratch folder stay behind.
    assert not (platform.common["data_dir"] / "finetune-work" / job_id).exists()
