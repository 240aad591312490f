"""Fine-tune jobs (arq, on the fine-tune worker): train, store the new version, validate it.

A job claims its row (queued -> running, with this worker's id and a heartbeat), trains in a
child process (training/runner.py), and only once the weights are all in storage creates the
new version, in the same transaction that marks the job `succeeded`; the version then goes
through the normal validation job. Every other ending leaves the job `failed` or `cancelled`
with a reason, and its stored files are removed: no half-written version exists at any point.

A worker that dies mid-job stops renewing its heartbeat; the sweeper (every minute, on the
fine-tune and on the hub's worker) fails such jobs after `finetune_lease_seconds` and removes
whatever the dead run stored. A retried arq job finds its row no longer `queued` and skips.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from services.models_hub.catalog import repository as catalog_repository
from services.models_hub.catalog.service import catalog_service
from services.models_hub.deps import HubContext
from services.models_hub.fine_tunes import repository
from services.models_hub.fine_tunes.service import announce, enqueue_fine_tune
from services.models_hub.models import (
    FineTuneJob,
    FineTuneStatus,
    ModelVersion,
    VersionFormat,
    VersionStatus,
)
from services.models_hub.training.runner import (
    TrainingFailed,
    TrainingLimits,
    TrainingStopped,
    run_training,
)
from services.models_hub.versions import repository as version_repository
from services.models_hub.versions.formats import FileKind, classify
from services.models_hub.versions.service import version_prefix, version_service
from shared.db import session_scope, utcnow
from shared.model_files import ModelFileError

logger = logging.getLogger("llmnet.models_hub.fine_tunes")

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
_REQUEUE_AFTER = timedelta(minutes=5)
_METRICS_KEPT = 2000  # reports kept in the history; older ones are thinned out


def result_prefix(job: FineTuneJob) -> str:
    return f"{version_prefix(job.model_id, job.result_version_id)}/original"


async def _claim(hub: HubContext, job_id: uuid.UUID) -> FineTuneJob | None:
    async with session_scope(hub.sessionmaker) as session:
        job = await repository.get(session, job_id, for_update=True)
        if job is None or job.status != FineTuneStatus.QUEUED:
            return None
        now = utcnow()
        job.status = FineTuneStatus.RUNNING
        job.worker_id = WORKER_ID
        job.started_at = job.heartbeat_at = now
        await session.flush()
        announce(session, hub.redis, hub.settings, job, "started")
        return job


async def _finish(
    hub: HubContext, job_id: uuid.UUID, status: FineTuneStatus, error: str | None
) -> None:
    """End the job (if it is still this worker's), and remove what the run stored."""
    async with session_scope(hub.sessionmaker) as session:
        job = await repository.get(session, job_id, for_update=True)
        if job is None or job.status != FineTuneStatus.RUNNING or job.worker_id != WORKER_ID:
            return
        await _end(session, hub, job, status, error)


async def _end(
    session: Any, hub: HubContext, job: FineTuneJob, status: FineTuneStatus, error: str | None
) -> None:
    job.status = status
    job.error = error
    job.finished_at = utcnow()
    await session.flush()
    announce(session, hub.redis, hub.settings, job, str(status))
    if not job.result_version_created:
        await hub.storage.delete_prefix(version_prefix(job.model_id, job.result_version_id))


async def _download(hub: HubContext, key: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    async with await anyio.open_file(target, "wb") as out:
        async for chunk in hub.storage.open(key):
            await out.write(chunk)


async def _upload_result(hub: HubContext, job: FineTuneJob, folder: Path) -> list[dict[str, Any]]:
    """Store the trained folder as the new version's files, each checked by the upload policy
    (safetensors and JSON/text only: nothing the trainer wrote is trusted blindly)."""
    files = []
    paths = await anyio.to_thread.run_sync(
        lambda: sorted(p for p in folder.iterdir() if p.is_file())
    )
    for path in paths:
        with path.open("rb") as handle:
            head = handle.read(512)
        try:
            kind = classify(path.name, head)
        except (ModelFileError, ValueError) as exc:
            raise TrainingFailed(f"training wrote an unexpected file {path.name}: {exc}") from exc
        if kind not in (FileKind.SAFETENSORS, FileKind.JSON, FileKind.TEXT, FileKind.SENTENCEPIECE):
            raise TrainingFailed(f"training wrote an unexpected file {path.name}")

        async def chunks(path: Path = path) -> Any:
            async with await anyio.open_file(path, "rb") as handle:
                while chunk := await handle.read(1 << 20):
                    yield chunk

        stored = await hub.storage.put(f"{result_prefix(job)}/{path.name}", chunks())
        files.append(
            {"name": path.name, "size": stored.size, "sha256": stored.sha256, "kind": kind}
        )
    if not any(f["kind"] == FileKind.SAFETENSORS for f in files):
        raise TrainingFailed("training saved no weights")
    return files


async def _complete(
    hub: HubContext, job_id: uuid.UUID, files: list[dict[str, Any]], report: dict[str, Any]
) -> str:
    """Create the new version and mark the job succeeded, in one transaction."""
    async with session_scope(hub.sessionmaker) as session:
        job = await repository.get(session, job_id, for_update=True)
        if job is None or job.status != FineTuneStatus.RUNNING or job.worker_id != WORKER_ID:
            return "lost"
        if job.cancel_requested:
            await _end(session, hub, job, FineTuneStatus.CANCELLED, "Cancelled by its owner.")
            return "cancelled"
        await catalog_repository.lock_model(session, job.model_id)
        model = await catalog_repository.get_model(session, job.model_id)
        assert model is not None  # jobs are deleted with their model
        base = (
            await version_repository.get_version(session, job.base_version_id)
            if job.base_version_id
            else None
        )
        train = job.datasets["train"]
        version = await version_repository.add_version(
            session,
            ModelVersion(
                id=job.result_version_id,
                model_id=job.model_id,
                owner_id=job.owner_id,
                number=await version_repository.next_number(session, job.model_id),
                status=VersionStatus.VALIDATING,
                format=VersionFormat.SAFETENSORS,
                files=files,
                total_size=sum(f["size"] for f in files),
                parent_version_id=job.base_version_id,
                lineage={
                    "fine_tune_id": str(job.id),
                    "base_version_id": str(job.base_version_id) if job.base_version_id else None,
                    "base_version_number": base.number if base is not None else None,
                    "dataset_sha256": train["sha256"],
                    "validation_dataset_sha256": job.datasets.get("validation", {}).get("sha256"),
                    "method": job.method,
                    "hyperparameters": job.hyperparameters,
                    "final_train_loss": report.get("final_train_loss"),
                    "final_validation_loss": report.get("final_validation_loss"),
                    "train_tokens": report.get("train_tokens"),
                },
            ),
        )
        job.result_version_created = True
        job.status = FineTuneStatus.SUCCEEDED
        job.finished_at = utcnow()
        job.progress = {**job.progress, "percent": 100.0, "eta_seconds": 0.0}
        await session.flush()
        await catalog_service.refresh_status(session, model)
        announce(session, hub.redis, hub.settings, job, "succeeded")
        version_service.enqueue_validation(session, hub, version.id)
        return "succeeded"


class _Reporter:
    """Writes progress to the job row (at most every `interval` seconds, and every report with
    a validation loss), renews the heartbeat, and says when to stop."""

    def __init__(self, hub: HubContext, job_id: uuid.UUID) -> None:
        self.hub = hub
        self.job_id = job_id
        self.interval = hub.settings.finetune_progress_interval_seconds
        self.last = 0.0
        self.stop_reason: FineTuneStatus | None = None

    async def report(self, payload: dict[str, Any]) -> bool:
        now = time.monotonic()
        last_step = payload.get("step") == payload.get("total_steps")
        if now - self.last < self.interval and "validation_loss" not in payload and not last_step:
            return True
        self.last = now
        progress = {k: v for k, v in payload.items() if k != "event"}
        total = progress.get("total_steps") or 1
        progress["percent"] = round(100.0 * progress.get("step", 0) / total, 2)
        async with session_scope(self.hub.sessionmaker) as session:
            job = await repository.get(session, self.job_id, for_update=True)
            if job is None or job.status != FineTuneStatus.RUNNING or job.worker_id != WORKER_ID:
                self.stop_reason = None
                return False
            if job.cancel_requested:
                self.stop_reason = FineTuneStatus.CANCELLED
                return False
            job.progress = progress
            metrics = [*job.metrics, progress]
            if len(metrics) > _METRICS_KEPT:
                metrics = metrics[::2]  # keep the whole run's shape, at half the resolution
            job.metrics = metrics
            job.heartbeat_at = utcnow()
            await session.flush()
            announce(session, self.hub.redis, self.hub.settings, job, "progress")
        return True

    async def heartbeat(self) -> bool:
        async with session_scope(self.hub.sessionmaker) as session:
            cancel = await repository.heartbeat(session, self.job_id, WORKER_ID, utcnow())
        if cancel is None:
            return False
        if cancel:
            self.stop_reason = FineTuneStatus.CANCELLED
            return False
        return True


async def _train(hub: HubContext, job: FineTuneJob, reporter: _Reporter, work: Path) -> str:
    settings = hub.settings
    async with session_scope(hub.sessionmaker) as session:
        base = (
            await version_repository.get_version(session, job.base_version_id)
            if job.base_version_id
            else None
        )
    if base is None or base.status != VersionStatus.READY or not base.servable_prefix:
        await _finish(hub, job.id, FineTuneStatus.FAILED, "The base version was deleted.")
        return "failed"
    model_dir, output_dir = work / "model", work / "output"
    for entry in base.servable_files:
        await _download(hub, f"{base.servable_prefix}/{entry['name']}", model_dir / entry["name"])
    files = {}
    for label, info in job.datasets.items():
        files[label] = work / f"{label}.jsonl"
        await _download(hub, info["key"], files[label])
    spec = {
        "model_dir": str(model_dir.absolute()),
        "output_dir": str(output_dir.absolute()),
        "train_file": str(files["train"].absolute()),
        "validation_file": str(files["validation"].absolute()) if "validation" in files else None,
        "hyperparameters": job.hyperparameters,
    }
    limits = TrainingLimits(
        timeout_seconds=settings.finetune_timeout_seconds,
        memory_bytes=settings.finetune_memory_bytes,
        threads=settings.finetune_threads,
        device=settings.finetune_device,
        heartbeat_seconds=settings.finetune_heartbeat_seconds,
    )
    (work / "sandbox").mkdir()
    report = await run_training(
        spec, work, limits, on_report=reporter.report, heartbeat=reporter.heartbeat
    )
    files_stored = await _upload_result(hub, job, output_dir)
    outcome = await _complete(hub, job.id, files_stored, report)
    if outcome == "lost":  # ended by the sweeper meanwhile: what was stored is nobody's
        await hub.storage.delete_prefix(version_prefix(job.model_id, job.result_version_id))
    return outcome


async def run_fine_tune(ctx: dict[str, Any], job_id: str) -> str:
    """The job: its outcome ("skipped", "succeeded", "failed", "cancelled", "lost") is for
    the worker's log."""
    hub: HubContext = ctx["hub"]
    job = await _claim(hub, uuid.UUID(job_id))
    if job is None:
        return "skipped"
    reporter = _Reporter(hub, job.id)
    work = work_dir(hub, job.id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        return await _train(hub, job, reporter, work)
    except TrainingStopped:
        if reporter.stop_reason == FineTuneStatus.CANCELLED:
            await _finish(hub, job.id, FineTuneStatus.CANCELLED, "Cancelled by its owner.")
            return "cancelled"
        return "lost"  # the sweeper (or a delete) ended it meanwhile
    except TrainingFailed as failure:
        logger.info("fine-tune %s failed: %s\n%s", job_id, failure.reason, failure.details[-2000:])
        await _finish(hub, job.id, FineTuneStatus.FAILED, failure.reason)
        return "failed"
    except asyncio.CancelledError:
        # arq's job timeout or the worker shutting down: the child is gone (runner kills it).
        with anyio.CancelScope(shield=True):
            await _finish(hub, job.id, FineTuneStatus.FAILED, "The fine-tune worker stopped.")
        raise
    except Exception:
        logger.exception("fine-tune %s crashed", job_id)
        await _finish(hub, job.id, FineTuneStatus.FAILED, "The fine-tune failed unexpectedly.")
        return "failed"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def work_dir(hub: HubContext, job_id: uuid.UUID) -> Path:
    """A job's scratch folder (spec, datasets, the trained weights before they are stored): by
    job id, so the sweeper can remove what a killed worker left."""
    return hub.settings.data_dir / "finetune-work" / str(job_id)


async def sweep_fine_tunes(ctx: dict[str, Any]) -> dict[str, int]:
    """Fail running jobs whose worker went silent; re-enqueue queued jobs whose arq job may
    have been lost with Redis (their job id makes a duplicate a no-op)."""
    hub: HubContext = ctx["hub"]
    now = utcnow()
    failed = requeued = 0
    silent = now - timedelta(seconds=hub.settings.finetune_lease_seconds)
    async with session_scope(hub.sessionmaker) as session:
        for job in await repository.stale_running(session, silent):
            if job.cancel_requested:
                await _end(session, hub, job, FineTuneStatus.CANCELLED, "Cancelled by its owner.")
            else:
                await _end(
                    session,
                    hub,
                    job,
                    FineTuneStatus.FAILED,
                    "The fine-tune worker stopped responding mid-training (it crashed or was "
                    "killed); no version was kept. Start the fine-tune again.",
                )
            shutil.rmtree(work_dir(hub, job.id), ignore_errors=True)
            failed += 1
        for job in await repository.old_queued(session, now - _REQUEUE_AFTER):
            enqueue_fine_tune(session, hub, job.id)
            requeued += 1
    return {"failed": failed, "requeued": requeued}
