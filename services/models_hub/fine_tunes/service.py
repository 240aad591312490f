"""Fine-tune jobs: create (datasets checked and stored), read, list, cancel, follow.

Creating one does not hold a transaction while the body arrives: the model is checked first,
the files stream to storage (and into memory, being at most `finetune_max_file_bytes` each)
and are checked line by line with the model's tokenizer, and only then a short transaction
inserts the job and enqueues it after commit. A refused request leaves no files behind.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from services.models_hub.catalog import repository as catalog_repository
from services.models_hub.catalog.service import catalog_service, model_prefix
from services.models_hub.config import ModelsHubSettings
from services.models_hub.deps import HubContext
from services.models_hub.fine_tunes import dataset, events, repository
from services.models_hub.fine_tunes.schemas import (
    DatasetInfo,
    FineTuneEvent,
    FineTuneRead,
    Hyperparameters,
    LineageNode,
    LineageRead,
    Progress,
)
from services.models_hub.fine_tunes.tokenizer import version_tokenizer
from services.models_hub.models import (
    FineTuneJob,
    FineTuneStatus,
    Model,
    ModelSource,
    ModelVersion,
    VersionStatus,
)
from shared.auth.identity import Identity
from shared.db import after_commit, session_scope, utcnow
from shared.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    UnprocessableEntity,
)
from shared.events import record_event
from shared.jobs import enqueue_after_commit
from shared.multipart import Part, iter_parts
from shared.storage import Storage

FINETUNE_QUEUE = "llmnet:finetune"
FINETUNE_JOB = "run_fine_tune"
_MULTIPART_OVERHEAD = 64 * 1024
_FILE_FIELDS = {"training_file": "train", "validation_file": "validation"}
_HYPERPARAMETER_FIELDS = set(Hyperparameters.model_fields)


class FineTuneNotFound(NotFound):
    code = "fine_tune_not_found"


class FineTuneConflict(Conflict):
    code = "fine_tune_state"


class InvalidDataset(UnprocessableEntity):
    code = "invalid_dataset"


def fine_tune_prefix(model_id: uuid.UUID, job_id: uuid.UUID) -> str:
    return f"{model_prefix(model_id)}/fine-tunes/{job_id}"


def event_of(job: FineTuneJob) -> FineTuneEvent:
    return FineTuneEvent(
        fine_tune_id=job.id,
        status=FineTuneStatus(job.status),
        progress=Progress.model_validate(job.progress) if job.progress else None,
        error=job.error,
        result_version_id=job.result_version_id if job.result_version_created else None,
    )


def announce(
    session: AsyncSession, redis: Any, settings: ModelsHubSettings, job: FineTuneJob, kind: str
) -> None:
    """Record `finetune.<kind>` in the outbox and, once committed, on the job's own stream
    (`progress` events there; every other kind is a `status` event)."""
    event = event_of(job)
    payload = {**event.model_dump(mode="json"), "model_id": str(job.model_id)}
    payload["owner_id"] = str(job.owner_id)
    record_event(session, f"finetune.{kind}", payload, source="models_hub")
    sse_kind = "progress" if kind == "progress" else "status"

    async def _publish() -> None:
        await events.publish(redis, sse_kind, event, settings.finetune_events_ttl_seconds)

    after_commit(session, _publish)


def _check_bounds(params: Hyperparameters, settings: ModelsHubSettings) -> None:
    problems = []
    if params.epochs > settings.finetune_max_epochs:
        problems.append(("epochs", f"at most {settings.finetune_max_epochs}"))
    if params.batch_size > settings.finetune_max_batch_size:
        problems.append(("batch_size", f"at most {settings.finetune_max_batch_size}"))
    if params.max_seq_length > settings.finetune_max_seq_length:
        problems.append(("max_seq_length", f"at most {settings.finetune_max_seq_length}"))
    low, high = settings.finetune_min_learning_rate, settings.finetune_max_learning_rate
    if not low <= params.learning_rate <= high:
        problems.append(("learning_rate", f"between {low:g} and {high:g}"))
    if problems:
        raise UnprocessableEntity(
            "Hyperparameters out of bounds: "
            + "; ".join(f"{name} must be {rule}" for name, rule in problems)
            + ".",
            code="invalid_hyperparameters",
            fields=[FieldError(field=name, message=f"must be {rule}") for name, rule in problems],
        )


def _parse_hyperparameters(raw: dict[str, str], settings: ModelsHubSettings) -> Hyperparameters:
    try:
        params = Hyperparameters.model_validate(raw)
    except ValidationError as exc:
        fields = [
            FieldError(field=".".join(str(p) for p in e["loc"]) or "form", message=e["msg"])
            for e in exc.errors()
        ]
        raise UnprocessableEntity(
            "Invalid hyperparameters: "
            + "; ".join(f"{f.field}: {f.message}" for f in fields)
            + ".",
            code="invalid_hyperparameters",
            fields=fields,
        ) from exc
    _check_bounds(params, settings)
    return params


def _dataset_error(label: str, problems: list[dataset.LineProblem]) -> InvalidDataset:
    shown = problems[: dataset.MAX_REPORTED_PROBLEMS]
    more = len(problems) - len(shown)
    detail = f"The {label} file has problems: " + "; ".join(
        f"line {p.line} {p.message}" for p in shown
    )
    if more > 0:
        detail += f"; and {more} more"
    return InvalidDataset(
        detail + ".",
        fields=[FieldError(field=f"{label}_file line {p.line}", message=p.message) for p in shown],
    )


class _Received:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, DatasetInfo]] = {}
        self.form: dict[str, str] = {}


async def _store_file(
    storage: Storage, key: str, part: Part, name: str, cap: int
) -> tuple[bytes, str, int]:
    """Stream a file part to storage, keeping its bytes for the checks."""
    kept = bytearray()

    async def tee() -> AsyncIterator[bytes]:
        async for chunk in part.chunks():
            kept.extend(chunk)
            if len(kept) > cap:
                raise PayloadTooLarge(f"'{name}' is larger than {cap} bytes, the most allowed.")
            yield chunk

    stored = await storage.put(key, tee(), max_bytes=cap)
    return bytes(kept), stored.sha256, stored.size


class FineTuneService:
    # -- reading --------------------------------------------------------------------------
    async def _read(self, session: AsyncSession, job: FineTuneJob) -> FineTuneRead:
        read = FineTuneRead.model_validate(
            {
                **{c: getattr(job, c) for c in FineTuneRead.model_fields if hasattr(job, c)},
                "result_version_id": job.result_version_id if job.result_version_created else None,
                "progress": job.progress or {},
                "queue_position": None,
            }
        )
        if job.status == FineTuneStatus.QUEUED:
            read.queue_position = await repository.queue_position(session, job)
        return read

    async def _own_job(
        self,
        session: AsyncSession,
        job_id: uuid.UUID,
        viewer: Identity,
        *,
        for_update: bool = False,
    ) -> FineTuneJob:
        """Fine-tunes are their owner's (and admins'); for anyone else they do not exist."""
        job = await repository.get(session, job_id, for_update=for_update)
        if job is None or (job.owner_id != viewer.user_id and not viewer.is_admin):
            raise FineTuneNotFound("No such fine-tune.")
        return job

    async def get(self, session: AsyncSession, job_id: uuid.UUID, viewer: Identity) -> FineTuneRead:
        return await self._read(session, await self._own_job(session, job_id, viewer))

    async def list_for_model(
        self,
        session: AsyncSession,
        model_id: uuid.UUID,
        viewer: Identity,
        *,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[FineTuneRead], str | None]:
        model = await catalog_service.visible(session, model_id, viewer)
        owner = None if viewer.is_admin else viewer.user_id
        jobs, next_cursor = await repository.page(
            session, model_id=model.id, owner_id=owner, cursor=cursor, limit=limit
        )
        return [await self._read(session, job) for job in jobs], next_cursor

    async def list_mine(
        self, session: AsyncSession, viewer: Identity, *, cursor: str | None, limit: int
    ) -> tuple[list[FineTuneRead], str | None]:
        jobs, next_cursor = await repository.page(
            session, owner_id=viewer.user_id, cursor=cursor, limit=limit
        )
        return [await self._read(session, job) for job in jobs], next_cursor

    async def lineage(
        self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity | None
    ) -> LineageRead:
        """The model's versions as a tree: each fine-tuned version under the one it was
        trained from."""
        model = await catalog_service.visible(session, model_id, viewer)
        versions = await repository.model_versions(session, model.id)
        nodes = {
            v.id: LineageNode(
                id=v.id,
                number=v.number,
                status=v.status,
                is_active=v.id == model.active_version_id,
                parent_version_id=v.parent_version_id,
                lineage=v.lineage or {},
                created_at=v.created_at,
            )
            for v in versions
        }
        roots: list[LineageNode] = []
        for node in nodes.values():  # oldest first, so children come in order too
            parent = nodes.get(node.parent_version_id) if node.parent_version_id else None
            (parent.children if parent is not None else roots).append(node)
        return LineageRead(model_id=model.id, roots=roots)

    # -- cancel ---------------------------------------------------------------------------
    async def cancel(
        self, session: AsyncSession, ctx: HubContext, job_id: uuid.UUID, viewer: Identity
    ) -> FineTuneRead:
        """A queued job is cancelled now; a running one when its worker next reports (within a
        step or a heartbeat), which stops training and keeps no version."""
        job = await self._own_job(session, job_id, viewer, for_update=True)
        if job.status == FineTuneStatus.QUEUED:
            job.status = FineTuneStatus.CANCELLED
            job.error = "Cancelled by its owner before it started."
            job.finished_at = utcnow()
            await session.flush()
            announce(session, ctx.redis, ctx.settings, job, "cancelled")
        elif job.status == FineTuneStatus.RUNNING:
            job.cancel_requested = True
            await session.flush()
        else:
            raise FineTuneConflict(f"The fine-tune has already {job.status}; nothing to cancel.")
        return await self._read(session, job)

    # -- events ---------------------------------------------------------------------------
    async def ensure_visible(
        self, session: AsyncSession, job_id: uuid.UUID, viewer: Identity
    ) -> None:
        await self._own_job(session, job_id, viewer)

    async def final_event(self, ctx: HubContext, job_id: uuid.UUID) -> FineTuneEvent | None:
        """The job's final state, or None while it is unfinished (for the live stream)."""
        async with session_scope(ctx.sessionmaker) as session:
            job = await repository.get(session, job_id)
            if job is None:
                return FineTuneEvent(
                    fine_tune_id=job_id, status=FineTuneStatus.FAILED, error="It was deleted."
                )
            event = event_of(job)
            return event if events.is_final(event) else None

    # -- create ---------------------------------------------------------------------------
    async def _base(self, ctx: HubContext, model_id: uuid.UUID, viewer: Identity) -> ModelVersion:
        async with session_scope(ctx.sessionmaker) as session:
            model = await catalog_service.visible(session, model_id, viewer)
            if model.owner_id != viewer.user_id:
                raise Forbidden("Only the model's owner may fine-tune it.", code="not_model_owner")
            version = await self._active_version(session, model)
            await self._check_user_limit(session, ctx, viewer)
            return version

    async def _active_version(self, session: AsyncSession, model: Model) -> ModelVersion:
        if model.source != ModelSource.UPLOAD:
            raise FineTuneConflict(
                "This model is served by an external provider; only uploaded models can be "
                "fine-tuned.",
                code="remote_model",
            )
        version = None
        if model.active_version_id is not None:
            version = await session.get(ModelVersion, model.active_version_id)
        if version is None or version.status != VersionStatus.READY or not version.servable_prefix:
            raise FineTuneConflict(
                "The model has no ready active version to fine-tune; upload one and wait for "
                "its validation.",
                code="no_active_version",
            )
        return version

    async def _check_user_limit(
        self, session: AsyncSession, ctx: HubContext, viewer: Identity
    ) -> None:
        limit = ctx.settings.finetune_max_concurrent_per_user
        if await repository.count_unfinished(session, viewer.user_id) >= limit:
            raise TooManyRequests(
                f"You have {limit} fine-tunes queued or running, the most allowed at once; "
                "wait for one to finish or cancel one.",
                retry_after=60,
                code="fine_tune_limit",
            )

    async def _receive(
        self, ctx: HubContext, request: Request, prefix: str
    ) -> tuple[_Received, dict[str, bytes]]:
        cap = ctx.settings.finetune_max_file_bytes
        received = _Received()
        raw: dict[str, bytes] = {}
        stream: AsyncIterator[bytes] = request.stream()
        async for part in iter_parts(stream, request.headers.get("content-type")):
            if part.name in _FILE_FIELDS and part.filename is not None:
                label = _FILE_FIELDS[part.name]
                if label in raw:
                    raise UnprocessableEntity(
                        f"'{part.name}' was sent twice.", code="unexpected_field"
                    )
                content, sha256, size = await _store_file(
                    ctx.storage, f"{prefix}/{label}.jsonl", part, part.name, cap
                )
                raw[label] = content
                received.files[label] = (
                    content,
                    DatasetInfo(
                        name=part.filename or f"{label}.jsonl",
                        size=size,
                        sha256=sha256,
                        examples=0,
                        tokens=0,
                    ),
                )
            elif part.filename is None and part.name in _HYPERPARAMETER_FIELDS:
                received.form[part.name] = (await part.read(256)).decode("utf-8", "replace")
            else:
                raise UnprocessableEntity(
                    f"Unexpected form field '{part.name}': send 'training_file' (JSONL), "
                    "optionally 'validation_file', and hyperparameters as fields ("
                    + ", ".join(sorted(_HYPERPARAMETER_FIELDS))
                    + ").",
                    code="unexpected_field",
                )
        if "train" not in raw:
            raise UnprocessableEntity(
                "Send the training data as a file field 'training_file' (JSONL).",
                code="no_training_file",
                fields=[FieldError(field="training_file", message="required")],
            )
        return received, raw

    async def _check_datasets(
        self,
        ctx: HubContext,
        received: _Received,
        params: Hyperparameters,
        base: ModelVersion,
    ) -> dict[str, DatasetInfo]:
        settings = ctx.settings
        parsed = {
            label: dataset.parse_jsonl(content, max_examples=settings.finetune_max_examples)
            for label, (content, _) in received.files.items()
        }
        for label in ("train", "validation"):
            if label in parsed and parsed[label].problems:
                raise _dataset_error(
                    "training" if label == "train" else label, parsed[label].problems
                )
        # A cache, kept apart from the temporary directory where uploads are spooled.
        tokenizer = await version_tokenizer(
            ctx.storage, base, settings.data_dir / "tokenizer-cache"
        )
        infos: dict[str, DatasetInfo] = {}
        for label, data in parsed.items():
            check = functools.partial(
                dataset.check_tokens, tokenizer, data, max_seq_length=params.max_seq_length
            )
            problems, tokens = await anyio.to_thread.run_sync(check)
            if problems:
                raise _dataset_error("training" if label == "train" else label, problems)
            info = received.files[label][1]
            infos[label] = info.model_copy(
                update={"examples": len(data.examples), "tokens": tokens}
            )
        steps = params.epochs * math.ceil(infos["train"].examples / params.batch_size)
        if steps > settings.finetune_max_steps:
            raise UnprocessableEntity(
                f"This fine-tune would run {steps} steps (epochs x examples / batch_size), more "
                f"than the {settings.finetune_max_steps} allowed; use fewer epochs or a larger "
                "batch.",
                code="too_many_steps",
            )
        return infos

    async def create(
        self, ctx: HubContext, request: Request, model_id: uuid.UUID, viewer: Identity
    ) -> FineTuneRead:
        settings = ctx.settings
        declared = request.headers.get("content-length")
        most = 2 * settings.finetune_max_file_bytes + _MULTIPART_OVERHEAD
        if declared and declared.isdigit() and int(declared) > most:
            raise PayloadTooLarge(
                f"The request is larger than {most} bytes; each dataset file may have at most "
                f"{settings.finetune_max_file_bytes} bytes."
            )
        base = await self._base(ctx, model_id, viewer)
        job_id = uuid.uuid4()
        prefix = fine_tune_prefix(model_id, job_id)
        try:
            received, _ = await self._receive(ctx, request, prefix)
            params = _parse_hyperparameters(received.form, settings)
            infos = await self._check_datasets(ctx, received, params, base)
            async with session_scope(ctx.sessionmaker) as session:
                job = await self._insert(session, ctx, viewer, base, job_id, params, infos, prefix)
                return await self._read(session, job)
        except BaseException:
            await ctx.storage.delete_prefix(prefix)
            raise

    async def _insert(
        self,
        session: AsyncSession,
        ctx: HubContext,
        viewer: Identity,
        base: ModelVersion,
        job_id: uuid.UUID,
        params: Hyperparameters,
        infos: dict[str, DatasetInfo],
        prefix: str,
    ) -> FineTuneJob:
        # The model's row lock serialises this user's creations against the limit.
        await catalog_repository.lock_model(session, base.model_id)
        if await catalog_repository.get_model(session, base.model_id) is None:
            raise FineTuneNotFound("The model was deleted meanwhile.")
        await self._check_user_limit(session, ctx, viewer)
        datasets = {
            label: {**info.model_dump(), "key": f"{prefix}/{label}.jsonl"}
            for label, info in infos.items()
        }
        job = await repository.add(
            session,
            FineTuneJob(
                id=job_id,
                model_id=base.model_id,
                owner_id=viewer.user_id,
                base_version_id=base.id,
                method=params.method,
                hyperparameters=params.model_dump(mode="json"),
                datasets=datasets,
                status=FineTuneStatus.QUEUED,
                progress={},
                metrics=[],
            ),
        )
        announce(session, ctx.redis, ctx.settings, job, "queued")
        enqueue_fine_tune(session, ctx, job.id)
        return job


def enqueue_fine_tune(session: AsyncSession, ctx: HubContext, job_id: uuid.UUID) -> None:
    enqueue_after_commit(
        session,
        ctx.jobs,
        FINETUNE_JOB,
        str(job_id),
        _job_id=f"finetune:{job_id}",
        _queue_name=FINETUNE_QUEUE,
    )


fine_tune_service = FineTuneService()
