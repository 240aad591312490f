"""Validation jobs (arq): prove an upload loads and generates, in a sandboxed child process.

Idempotent and crash-safe: a job re-reads its version and does nothing unless it is still
`validating` and no other attempt holds the lease (validation_started_at within the
timeout). If a worker dies mid-job, the sweeper finds the expired lease and enqueues another
attempt, up to `validation_max_attempts`; after that the version is failed with a reason.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from services.models_hub.catalog import repository as catalog_repository
from services.models_hub.catalog.service import catalog_service, model_ref
from services.models_hub.deps import HubContext
from services.models_hub.models import Model, ModelVersion, VersionStatus
from services.models_hub.validation.runner import SandboxLimits, ValidationFailed, run_sandbox
from services.models_hub.versions import repository
from services.models_hub.versions.formats import FileKind
from services.models_hub.versions.service import original_prefix, version_prefix, version_service
from shared.db import session_scope, utcnow
from shared.events import record_event

logger = logging.getLogger("llmnet.models_hub.validation")
_LEASE_MARGIN = timedelta(seconds=120)


def _lease(ctx: HubContext) -> timedelta:
    return timedelta(seconds=ctx.settings.validation_timeout_seconds) + _LEASE_MARGIN


def _event_payload(model: Model, version: ModelVersion) -> dict[str, Any]:
    return {
        "model_id": str(model.id),
        "version_id": str(version.id),
        "owner_id": str(model.owner_id),
        "ref": model_ref(model),
        "number": version.number,
        "error": version.error,
    }


async def _claim(ctx: HubContext, version_id: uuid.UUID) -> ModelVersion | None:
    async with session_scope(ctx.sessionmaker) as session:
        version = await repository.get_version(session, version_id, for_update=True)
        if version is None or version.status != VersionStatus.VALIDATING:
            return None
        now = utcnow()
        started = version.validation_started_at
        if started is not None and now - started < _lease(ctx):
            return None  # another attempt is running
        version.attempts += 1
        version.validation_started_at = now
        return version


async def _download(ctx: HubContext, version: ModelVersion, into: Path) -> None:
    prefix = original_prefix(version)
    for entry in version.files:
        target = into / entry["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        async with await anyio.open_file(target, "wb") as out:
            async for chunk in ctx.storage.open(f"{prefix}/{entry['name']}"):
                await out.write(chunk)


async def _upload_dir(ctx: HubContext, source: Path, prefix: str) -> list[dict[str, Any]]:
    paths = await anyio.to_thread.run_sync(
        lambda: sorted(p for p in source.rglob("*") if p.is_file())
    )
    uploaded = []
    for path in paths:

        async def chunks(path: Path = path) -> Any:
            async with await anyio.open_file(path, "rb") as handle:
                while chunk := await handle.read(1 << 20):
                    yield chunk

        name = path.relative_to(source).as_posix()
        stored = await ctx.storage.put(f"{prefix}/{name}", chunks())
        uploaded.append({"name": name, "size": stored.size, "sha256": stored.sha256})
    return uploaded


async def _finish(
    ctx: HubContext,
    version_id: uuid.UUID,
    *,
    details: dict[str, Any] | None,
    servable: tuple[str, list[dict[str, Any]]] | None,
    error: str | None,
) -> None:
    async with session_scope(ctx.sessionmaker) as session:
        version = await repository.get_version(session, version_id, for_update=True)
        if version is None or version.status != VersionStatus.VALIDATING:
            return  # deleted (or finished by another attempt) meanwhile
        model = await catalog_repository.get_model(session, version.model_id, for_update=True)
        assert model is not None  # versions are deleted with their model
        version.validated_at = utcnow()
        if error is None:
            version.status = VersionStatus.READY
            version.details = details or {}
            assert servable is not None
            version.servable_prefix, version.servable_files = servable
            if model.active_version_id is None:
                model.active_version_id = version.id  # the first ready version goes live
        else:
            version.status = VersionStatus.FAILED
            version.error = error
        await session.flush()
        await catalog_service.refresh_status(session, model)
        event = "model.version.validated" if error is None else "model.version.failed"
        record_event(session, event, _event_payload(model, version), source="models_hub")


async def validate_version(ctx: dict[str, Any], version_id: str) -> str:
    """The job: its outcome ("skipped", "failed" or "ready") is for the worker's log."""
    hub: HubContext = ctx["hub"]
    settings = hub.settings
    version = await _claim(hub, uuid.UUID(version_id))
    if version is None:
        return "skipped"
    tmp_root = settings.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix="validate-") as work:
        model_dir, output_dir = Path(work) / "model", Path(work) / "output"
        model_dir.mkdir()
        output_dir.mkdir()
        await _download(hub, version, model_dir)
        gguf = next((f["name"] for f in version.files if f["kind"] == FileKind.GGUF), None)
        limits = SandboxLimits(
            timeout_seconds=settings.validation_timeout_seconds,
            memory_bytes=settings.validation_memory_bytes,
            cpu_seconds=settings.validation_cpu_seconds,
            threads=settings.validation_threads,
        )
        try:
            report = await run_sandbox(model_dir, output_dir, limits=limits, gguf_file=gguf)
        except ValidationFailed as failure:
            logger.info("version %s failed validation: %s", version_id, failure.reason)
            await _finish(hub, version.id, details=None, servable=None, error=failure.reason)
            return "failed"
        servable = (original_prefix(version), version.files)
        if report.converted:
            prefix = f"{version_prefix(version.model_id, version.id)}/servable"
            servable = (prefix, await _upload_dir(hub, output_dir, prefix))
    await _finish(hub, version.id, details=asdict(report), servable=servable, error=None)
    return "ready"


async def sweep_versions(ctx: dict[str, Any]) -> dict[str, int]:
    """Retry validations whose worker vanished; fail uploads that never finished."""
    hub: HubContext = ctx["hub"]
    now = utcnow()
    retried = failed = 0
    async with session_scope(hub.sessionmaker) as session:
        for version in await repository.stale_validations(session, now - _lease(hub)):
            if version.attempts >= hub.settings.validation_max_attempts:
                version.status = VersionStatus.FAILED
                version.error = (
                    f"Validation did not complete after {version.attempts} attempts (the "
                    "worker stopped each time). Upload the model again or contact support."
                )
                model = await catalog_repository.get_model(session, version.model_id)
                assert model is not None
                await session.flush()
                await catalog_service.refresh_status(session, model)
                record_event(
                    session,
                    "model.version.failed",
                    _event_payload(model, version),
                    source="models_hub",
                )
                failed += 1
            else:
                version.validation_started_at = None
                version.updated_at = now
                version_service.enqueue_validation(session, hub, version.id, version.attempts)
                retried += 1
        stale_upload = now - timedelta(seconds=hub.settings.stale_upload_seconds)
        for version in await repository.abandoned_uploads(session, stale_upload):
            version.status = VersionStatus.FAILED
            version.error = "The upload never finished; upload the version again."
            await hub.storage.delete_prefix(version_prefix(version.model_id, version.id))
            failed += 1
    return {"retried": retried, "failed": failed}
