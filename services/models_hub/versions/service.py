"""Version lifecycle: uploading → validating → ready | failed; activation and rollback.

An upload can take minutes, so it does not hold a transaction open: the version row is
committed as `uploading` first, the body streams into storage, and a second short
transaction marks it `validating` and enqueues the validation job after commit. A failed
upload removes its files and its row: nothing is left behind.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from services.models_hub.catalog import repository as catalog_repository
from services.models_hub.catalog.access import can_manage
from services.models_hub.catalog.service import catalog_service, model_prefix
from services.models_hub.deps import HubContext
from services.models_hub.models import (
    Model,
    ModelSource,
    ModelVersion,
    VersionStatus,
    Visibility,
)
from services.models_hub.versions import repository
from services.models_hub.versions.schemas import VersionRead
from services.models_hub.versions.upload import UploadLimits, VersionFiles
from shared.auth.identity import Identity
from shared.db import after_commit, session_scope
from shared.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, UnprocessableEntity
from shared.jobs import enqueue_after_commit
from shared.multipart import MalformedMultipart, iter_parts

VALIDATION_QUEUE = "llmnet:validation"
VALIDATION_JOB = "validate_version"
_MULTIPART_OVERHEAD = 1 << 20  # boundaries and part headers around the files themselves


class VersionNotFound(NotFound):
    code = "version_not_found"


class VersionConflict(Conflict):
    code = "version_state"


def version_prefix(model_id: uuid.UUID, version_id: uuid.UUID) -> str:
    return f"{model_prefix(model_id)}/versions/{version_id}"


def original_prefix(version: ModelVersion) -> str:
    """Where a version's files lie as they were uploaded."""
    return f"{version_prefix(version.model_id, version.id)}/original"


def _version_read(version: ModelVersion, model: Model) -> VersionRead:
    read = VersionRead.model_validate(version)
    read.is_active = model.active_version_id == version.id
    return read


class VersionService:
    def enqueue_validation(
        self, session: AsyncSession, ctx: HubContext, version_id: uuid.UUID, attempt: int = 0
    ) -> None:
        """Validate the version once the session's transaction has committed."""
        # One job id per attempt: a retry is never swallowed by arq's memory of the last one.
        enqueue_after_commit(
            session,
            ctx.jobs,
            VALIDATION_JOB,
            str(version_id),
            _job_id=f"validate:{version_id}:{attempt}",
            _queue_name=VALIDATION_QUEUE,
        )

    async def _version(
        self, session: AsyncSession, model_id: uuid.UUID, version_id: uuid.UUID
    ) -> ModelVersion:
        version = await repository.get_version(session, version_id)
        if version is None or version.model_id != model_id:
            raise VersionNotFound("No such version of this model.")
        return version

    async def list(
        self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity | None
    ) -> list[VersionRead]:
        model = await catalog_service.visible(session, model_id, viewer)
        versions = await repository.list_versions(session, model.id)
        return [_version_read(v, model) for v in versions]

    async def get(
        self,
        session: AsyncSession,
        model_id: uuid.UUID,
        version_id: uuid.UUID,
        viewer: Identity | None,
    ) -> VersionRead:
        model = await catalog_service.visible(session, model_id, viewer)
        return _version_read(await self._version(session, model.id, version_id), model)

    # -- upload ---------------------------------------------------------------------------
    async def upload(
        self, ctx: HubContext, request: Request, model_id: uuid.UUID, viewer: Identity
    ) -> VersionRead:
        settings = ctx.settings
        declared = request.headers.get("content-length")
        if (
            declared
            and declared.isdigit()
            and int(declared) > settings.max_upload_bytes + _MULTIPART_OVERHEAD
        ):
            raise PayloadTooLarge(
                f"The upload is larger than {settings.max_upload_bytes} bytes, the most allowed."
            )
        version_id = await self._begin(ctx, model_id, viewer)
        prefix = version_prefix(model_id, version_id)
        try:
            files, checksums = await self._receive(ctx, request, f"{prefix}/original")
            files.verify_checksums(checksums)
            model_format = files.model_format()
        except BaseException:
            await self.discard_upload(ctx, model_id, version_id)
            raise
        return await self.finish_upload(ctx, model_id, version_id, files, model_format)

    async def finish_upload(
        self,
        ctx: HubContext,
        model_id: uuid.UUID,
        version_id: uuid.UUID,
        files: VersionFiles,
        model_format: str,
        *,
        also: Callable[[AsyncSession], Awaitable[None]] | None = None,
    ) -> VersionRead:
        """Record an `uploading` version's received files and queue its validation (`also`
        runs in the same transaction)."""
        async with session_scope(ctx.sessionmaker) as session:
            version = await repository.get_version(session, version_id, for_update=True)
            model = await catalog_repository.get_model(session, model_id)
            if version is None or model is None:  # deleted while uploading
                raise VersionNotFound("The model or version was deleted during the upload.")
            version.files = [f.as_dict() for f in files.files.values()]
            version.total_size = sum(f.size for f in files.files.values())
            version.format = model_format
            version.status = VersionStatus.VALIDATING
            await catalog_service.refresh_status(session, model)
            await session.flush()
            self.enqueue_validation(session, ctx, version_id)
            if also is not None:
                await also(session)
            return _version_read(version, model)

    async def discard_upload(
        self, ctx: HubContext, model_id: uuid.UUID, version_id: uuid.UUID
    ) -> None:
        """Remove a refused or failed upload's files and its `uploading` version."""
        # Shielded: a cancelled upload (the client went away) must still clean up.
        with anyio.CancelScope(shield=True):
            await ctx.storage.delete_prefix(version_prefix(model_id, version_id))
            async with session_scope(ctx.sessionmaker) as session:
                version = await repository.get_version(session, version_id)
                if version is not None:
                    await repository.delete_version(session, version)

    async def _begin(self, ctx: HubContext, model_id: uuid.UUID, viewer: Identity) -> uuid.UUID:
        async with session_scope(ctx.sessionmaker) as session:
            model = await self.uploadable(session, model_id, viewer)
            await catalog_service.ensure_upload_allowed_today(session, ctx, viewer)
            version = await self.add_uploading(session, model, viewer)
            return version.id

    async def uploadable(
        self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity
    ) -> Model:
        """A model the viewer may upload versions of."""
        model = await catalog_service.managed(session, model_id, viewer)
        if model.source != ModelSource.UPLOAD:
            raise BadRequest(
                "This model is served by an external provider; it has no uploads.",
                code="remote_model",
            )
        return model

    async def add_uploading(
        self,
        session: AsyncSession,
        model: Model,
        viewer: Identity,
        version_id: uuid.UUID | None = None,
    ) -> ModelVersion:
        """A new `uploading` version of `model`, numbered next."""
        # The model row lock serialises version numbering.
        await catalog_repository.lock_model(session, model.id)
        version = await repository.add_version(
            session,
            ModelVersion(
                id=version_id or uuid.uuid4(),
                model_id=model.id,
                owner_id=viewer.user_id,
                number=await repository.next_number(session, model.id),
            ),
        )
        await catalog_service.refresh_status(session, model)
        return version

    def version_files(self, ctx: HubContext, prefix: str) -> VersionFiles:
        """The receiver of a version's files under `prefix`, held to the upload limits."""
        settings = ctx.settings
        tmp_dir = settings.data_dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return VersionFiles(
            ctx.storage,
            prefix,
            UploadLimits(
                max_bytes=settings.max_upload_bytes,
                max_extracted_bytes=settings.max_extracted_bytes,
                max_members=settings.max_archive_members,
                max_json_bytes=settings.max_json_file_bytes,
                max_expansion_ratio=settings.max_expansion_ratio,
            ),
            tmp_dir,
        )

    async def _receive(
        self, ctx: HubContext, request: Request, prefix: str
    ) -> tuple[VersionFiles, dict[str, str]]:
        files = self.version_files(ctx, prefix)
        checksums: dict[str, str] = {}
        single: str | None = None  # `sha256` of a one-file upload, before or after the file
        stream: AsyncIterator[bytes] = request.stream()
        async for part in iter_parts(stream, request.headers.get("content-type")):
            if part.filename is not None:
                if not part.filename:
                    raise MalformedMultipart("A file part has an empty filename.")
                await files.add_upload(part.filename, part.chunks())
            elif part.name == "checksums":
                checksums.update(_parse_checksums(await part.read(64 * 1024)))
            elif part.name == "sha256":
                single = (await part.read(1024)).decode("utf-8", "replace").strip()
            else:
                raise UnprocessableEntity(
                    f"Unexpected form field '{part.name}': send files, and optionally "
                    "'checksums' (a JSON object of file name to SHA-256).",
                    code="unexpected_field",
                )
        if not files.files:
            raise UnprocessableEntity("The upload contained no files.", code="no_files")
        if single is not None:
            if len(files.files) != 1:
                raise UnprocessableEntity(
                    "'sha256' is for single-file uploads; use 'checksums' (a JSON object of "
                    "file name to SHA-256) for several files.",
                    code="invalid_checksums",
                )
            checksums[next(iter(files.files))] = single
        return files, checksums

    # -- lifecycle ------------------------------------------------------------------------
    async def activate(
        self, session: AsyncSession, model_id: uuid.UUID, version_id: uuid.UUID, viewer: Identity
    ) -> VersionRead:
        model = await catalog_service.managed(session, model_id, viewer)
        version = await self._version(session, model.id, version_id)
        if version.status != VersionStatus.READY:
            raise VersionConflict(
                f"Version {version.number} is {version.status}; only ready versions can be "
                "activated."
            )
        model.active_version_id = version.id
        await catalog_service.refresh_status(session, model)
        await session.flush()
        return _version_read(version, model)

    async def delete(
        self,
        session: AsyncSession,
        ctx: HubContext,
        model_id: uuid.UUID,
        version_id: uuid.UUID,
        viewer: Identity,
    ) -> None:
        model = await catalog_service.managed(session, model_id, viewer)
        version = await self._version(session, model.id, version_id)
        if model.active_version_id == version.id:
            if await repository.count_versions(session, model.id, besides=version.id):
                raise VersionConflict(
                    "This is the active version; activate another version before deleting it."
                )
            model.active_version_id = None
            await session.flush()
        await repository.delete_version(session, version)
        await catalog_service.refresh_status(session, model)
        prefix = version_prefix(model.id, version.id)

        async def _delete_files() -> None:
            await ctx.storage.delete_prefix(prefix)

        after_commit(session, _delete_files)

    async def file_stream(
        self,
        session: AsyncSession,
        ctx: HubContext,
        model_id: uuid.UUID,
        version_id: uuid.UUID,
        name: str,
        viewer: Identity | None,
    ) -> tuple[int, AsyncIterator[bytes]]:
        """An uploaded file as it was sent (a GGUF too, although its conversion is served)."""
        model = await catalog_service.visible(session, model_id, viewer)
        version = await self._version(session, model.id, version_id)
        grant = await catalog_repository.get_grant(session, model.id, viewer)
        if model.visibility != Visibility.PUBLIC and not can_manage(model, viewer, grant):
            raise VersionNotFound("No such file.")
        entry = next((f for f in version.files if f["name"] == name), None)
        if entry is None:
            raise VersionNotFound(f"Version {version.number} has no file '{name}'.")
        return int(entry["size"]), ctx.storage.open(f"{original_prefix(version)}/{name}")


def _parse_checksums(raw: bytes) -> dict[str, str]:
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise UnprocessableEntity(
            "'checksums' must be a JSON object of file name to SHA-256.", code="invalid_checksums"
        ) from exc
    if not isinstance(parsed, dict) or not all(
        isinstance(v, str) and len(v) == 64 for v in parsed.values()
    ):
        raise UnprocessableEntity(
            "'checksums' must map file names to 64-character hex SHA-256 digests.",
            code="invalid_checksums",
        )
    return {str(k): v for k, v in parsed.items()}


version_service = VersionService()
