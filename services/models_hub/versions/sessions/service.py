"""Upload sessions: open -> completed | aborted | expired.

Creating a session checks what can be checked from names and sizes (file names, the upload
cap, the daily upload limit, which it uses up once) and starts one object per file in storage,
assembled from parts (an S3 multipart upload; part files on the local backend) right where the
version's file will lie. Each part streams to storage before it is recorded; recording is one
upsert under a shared lock of the session row, so parts sent in parallel never lose each
other, and completing or aborting (which lock it exclusively) waits for the parts in flight.

Completing assembles the objects, then reads each back once through the one-request upload's
checks (file policy, safetensors header, JSON, archive unpacking, sizes) while hashing it, and
compares the SHA-256s given at creation. A refused or mismatching file aborts the session:
nothing is kept. Otherwise the version is recorded and validated as a one-request upload is.
No transaction is held while bytes move.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.catalog import repository as catalog_repository
from services.models_hub.catalog.access import can_manage
from services.models_hub.catalog.service import ModelNotFound
from services.models_hub.deps import HubContext
from services.models_hub.models import (
    Model,
    ModelSource,
    UploadSession,
    UploadSessionPart,
    UploadSessionStatus,
    VersionStatus,
)
from services.models_hub.versions import repository as version_repository
from services.models_hub.versions.formats import FileRefused
from services.models_hub.versions.schemas import VersionRead
from services.models_hub.versions.service import version_prefix, version_service
from services.models_hub.versions.sessions import repository
from services.models_hub.versions.sessions.schemas import (
    UploadFileRead,
    UploadPartRead,
    UploadSessionCreate,
    UploadSessionRead,
)
from services.models_hub.versions.upload import (
    ArchiveRefused,
    ChecksumMismatch,
    plain_name,
    sniffed,
)
from shared.auth.identity import Identity
from shared.db import session_scope, utcnow
from shared.errors import (
    BadRequest,
    Conflict,
    FieldError,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    UnprocessableEntity,
)
from shared.storage import PartSizeMismatch, StoredPart

logger = logging.getLogger("llmnet.models_hub.upload_sessions")

MAX_PARTS = 10_000  # S3's limit on the parts of one object
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


class UploadSessionNotFound(NotFound):
    code = "upload_session_not_found"


class UploadFileNotFound(NotFound):
    code = "upload_file_not_found"


class UploadSessionClosed(Conflict):
    code = "upload_session_closed"


class UploadSessionCompleting(Conflict):
    code = "upload_session_completing"


class UploadIncomplete(Conflict):
    code = "upload_incomplete"


class InvalidPartOffset(UnprocessableEntity):
    code = "invalid_part_offset"


class InvalidPartSize(UnprocessableEntity):
    code = "invalid_part_size"


class PartInterrupted(BadRequest):
    code = "part_interrupted"


def _part_count(size: int, part_size: int) -> int:
    return math.ceil(size / part_size)


def _offsets(size: int, part_size: int) -> range:
    return range(0, size, part_size)


def _state(upload: UploadSession) -> UploadSessionStatus:
    """The status clients see: an open session past its expiry is expired already, before
    the sweeper gets to it."""
    if upload.status == UploadSessionStatus.OPEN and upload.expires_at <= utcnow():
        return UploadSessionStatus.EXPIRED
    return UploadSessionStatus(upload.status)


def _read(upload: UploadSession, parts: Sequence[UploadSessionPart]) -> UploadSessionRead:
    received: dict[int, list[int]] = {}
    for part in parts:
        received.setdefault(part.file_index, []).append(part.part_offset)
    files = []
    for index, entry in enumerate(upload.files):
        got = sorted(received.get(index, []))
        have = set(got)
        files.append(
            UploadFileRead(
                name=entry["name"],
                size=entry["size"],
                sha256=entry["sha256"],
                part_count=_part_count(entry["size"], upload.part_size),
                received_offsets=got,
                missing_offsets=[
                    o for o in _offsets(entry["size"], upload.part_size) if o not in have
                ],
            )
        )
    status = _state(upload)
    return UploadSessionRead(
        id=upload.id,
        model_id=upload.model_id,
        status=status,
        part_size=upload.part_size,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
        version_id=upload.version_id if status == UploadSessionStatus.COMPLETED else None,
        files=files,
        received_bytes=sum(p.length for p in parts),
        total_bytes=sum(entry["size"] for entry in upload.files),
    )


def _ensure_open(upload: UploadSession) -> None:
    status = _state(upload)
    if status != UploadSessionStatus.OPEN:
        what = {
            UploadSessionStatus.COMPLETED: "is completed (its version exists)",
            UploadSessionStatus.ABORTED: "was aborted and its parts removed",
            UploadSessionStatus.EXPIRED: "expired and its parts are removed",
        }[status]
        raise UploadSessionClosed(
            f"This upload session {what}; create a new upload session to upload again."
        )
    if upload.completing_since is not None:
        raise UploadSessionCompleting(
            "This upload session is being completed; GET it to see when its version exists."
        )


@dataclass(frozen=True)
class _Shape:
    """What a session's parts are checked against; fixed when the session is created."""

    owner_id: uuid.UUID
    model_id: uuid.UUID
    files: tuple[dict[str, Any], ...]
    part_size: int


def _file(files: Sequence[dict[str, Any]], name: str) -> tuple[int, dict[str, Any]]:
    for index, entry in enumerate(files):
        if entry["name"] == name:
            return index, entry
    names = ", ".join(f"'{e['name']}'" for e in files)
    raise UploadFileNotFound(f"This upload session has no file '{name}'; its files: {names}.")


def _stored_parts(
    upload: UploadSession, parts: Sequence[UploadSessionPart]
) -> list[tuple[dict[str, Any], list[StoredPart]]]:
    """Each file with its parts, in order; UploadIncomplete naming what is still missing."""
    by_file: dict[int, dict[int, UploadSessionPart]] = {}
    for part in parts:
        by_file.setdefault(part.file_index, {})[part.part_offset] = part
    plan = []
    missing: dict[str, list[int]] = {}
    for index, entry in enumerate(upload.files):
        received = by_file.get(index, {})
        offsets = _offsets(entry["size"], upload.part_size)
        if lacking := [o for o in offsets if o not in received]:
            missing[entry["name"]] = lacking
            continue
        plan.append(
            (
                entry,
                [
                    StoredPart(
                        number=o // upload.part_size + 1,
                        size=received[o].length,
                        crc32c=received[o].crc32c,
                        etag=received[o].etag,
                    )
                    for o in offsets
                ],
            )
        )
    if missing:
        listed = "; ".join(
            f"'{name}' at offsets {', '.join(map(str, offsets))}"
            for name, offsets in missing.items()
        )
        raise UploadIncomplete(
            f"Parts are missing: {listed}. Send them (PUT .../files/{{name}}?offset=N), then "
            "complete again.",
            fields=[
                FieldError(field=f"files.{name}", message=f"missing offsets {offsets}")
                for name, offsets in missing.items()
            ],
        )
    return plan


class UploadSessionService:
    #: Shapes of the sessions this process took parts for lately (see _shape).
    SHAPES_KEPT = 4096

    def __init__(self) -> None:
        self._shapes: OrderedDict[uuid.UUID, _Shape] = OrderedDict()

    # -- access ---------------------------------------------------------------------------
    async def _uploadable(
        self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity
    ) -> Model:
        """A model the viewer may upload to; for anyone else it does not exist."""
        model = await catalog_repository.get_model(session, model_id)
        grant = await catalog_repository.get_grant(session, model_id, viewer)
        if model is None or not can_manage(model, viewer, grant):
            raise ModelNotFound("No such model among those you may upload to.")
        if model.source != ModelSource.UPLOAD:
            raise BadRequest(
                "This model is served by an external provider; it has no uploads.",
                code="remote_model",
            )
        return model

    async def _owned(
        self,
        session: AsyncSession,
        model_id: uuid.UUID,
        session_id: uuid.UUID,
        viewer: Identity,
        *,
        for_update: bool = False,
        for_share: bool = False,
    ) -> UploadSession:
        """The viewer's own session (an admin's too); for anyone else it does not exist."""
        upload = await repository.get_session(
            session, session_id, for_update=for_update, for_share=for_share
        )
        if (
            upload is None
            or upload.model_id != model_id
            or not (upload.owner_id == viewer.user_id or viewer.is_admin)
        ):
            raise UploadSessionNotFound("No such upload session of this model.")
        return upload

    async def _shape(
        self, session: AsyncSession, model_id: uuid.UUID, session_id: uuid.UUID, viewer: Identity
    ) -> _Shape:
        """The viewer's own session's shape (an admin's too), remembered: a session's owner,
        model, files and part size never change, so its parts (64 per GiB) need not load its
        row each. Whether it is still open is the caller's to ask the database."""
        shape = self._shapes.get(session_id)
        if shape is None:
            upload = await repository.get_session(session, session_id)
            if upload is None:
                raise UploadSessionNotFound("No such upload session of this model.")
            shape = _Shape(upload.owner_id, upload.model_id, tuple(upload.files), upload.part_size)
            self._shapes[session_id] = shape
            while len(self._shapes) > self.SHAPES_KEPT:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(session_id)
        if shape.model_id != model_id or not (shape.owner_id == viewer.user_id or viewer.is_admin):
            raise UploadSessionNotFound("No such upload session of this model.")
        return shape

    async def _refuse_closed(self, session: AsyncSession, session_id: uuid.UUID) -> NoReturn:
        """Why the session takes no parts (it was not open when a statement asked)."""
        upload = await repository.get_session(session, session_id)
        if upload is None:
            raise UploadSessionNotFound("No such upload session of this model.")
        _ensure_open(upload)
        raise UploadSessionClosed(  # it expired between the two reads
            "This upload session expired while the part arrived; create a new one."
        )

    async def _ensure_upload_allowed_today(
        self, session: AsyncSession, ctx: HubContext, viewer: Identity
    ) -> None:
        """The daily upload limit, counting versions and sessions not (yet) versions."""
        since = utcnow() - timedelta(days=1)
        used = await catalog_repository.versions_since(session, viewer.user_id, since)
        used += await repository.unfinished_since(session, viewer.user_id, since)
        if used >= ctx.settings.max_uploads_per_day:
            raise TooManyRequests(
                f"You uploaded {used} versions in the last 24 hours, the most allowed.",
                retry_after=3600,
                code="upload_limit",
            )

    # -- create ---------------------------------------------------------------------------
    def _checked_request(self, ctx: HubContext, body: UploadSessionCreate) -> int:
        """The session's part size, once names and sizes pass the upload rules."""
        settings = ctx.settings
        part_size = body.part_size or settings.upload_part_bytes
        if part_size > settings.upload_max_part_bytes:
            raise InvalidPartSize(
                f"part_size {part_size} is larger than {settings.upload_max_part_bytes} bytes, "
                "the most allowed; choose a smaller one (or leave it out for the default, "
                f"{settings.upload_part_bytes}).",
                fields=[FieldError(field="part_size", message="too large")],
            )
        seen: set[str] = set()
        for entry in body.files:
            name = plain_name(entry.name)
            if name in seen:
                raise FileRefused(f"'{name}' is listed twice.")
            seen.add(name)
            if _part_count(entry.size, part_size) > MAX_PARTS:
                raise InvalidPartSize(
                    f"'{name}' would take more than {MAX_PARTS} parts of {part_size} bytes; "
                    f"choose a part_size of at least {math.ceil(entry.size / MAX_PARTS)}.",
                    fields=[FieldError(field="part_size", message="too small for the files")],
                )
        if len(body.files) > 1 and any(
            e.name.lower().endswith(_ARCHIVE_SUFFIXES) for e in body.files
        ):
            raise ArchiveRefused("Upload an archive on its own, not with other files.")
        total = sum(e.size for e in body.files)
        if total > settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"The upload is larger than {settings.max_upload_bytes} bytes, the most allowed."
            )
        return part_size

    async def create(
        self, ctx: HubContext, model_id: uuid.UUID, viewer: Identity, body: UploadSessionCreate
    ) -> UploadSessionRead:
        async with session_scope(ctx.sessionmaker) as session:
            await self._uploadable(session, model_id, viewer)
            await self._ensure_upload_allowed_today(session, ctx, viewer)
        part_size = self._checked_request(ctx, body)
        version_id = uuid.uuid4()
        original = f"{version_prefix(model_id, version_id)}/original"
        files: list[dict[str, Any]] = []
        try:
            for entry in body.files:
                key = f"{original}/{entry.name}"
                upload_id = await ctx.storage.start_parts(key)
                files.append(
                    {
                        "name": entry.name,
                        "size": entry.size,
                        "sha256": entry.sha256.lower() if entry.sha256 else None,
                        "key": key,
                        "upload_id": upload_id,
                    }
                )
            async with session_scope(ctx.sessionmaker) as session:
                await self._uploadable(session, model_id, viewer)
                upload = await repository.add_session(
                    session,
                    UploadSession(
                        model_id=model_id,
                        owner_id=viewer.user_id,
                        version_id=version_id,
                        part_size=part_size,
                        files=files,
                        expires_at=utcnow()
                        + timedelta(seconds=ctx.settings.upload_session_seconds),
                    ),
                )
                await session.refresh(upload)
                return _read(upload, [])
        except BaseException:
            await self._remove_parts(ctx, files)
            raise

    # -- read -----------------------------------------------------------------------------
    async def get(
        self, ctx: HubContext, model_id: uuid.UUID, session_id: uuid.UUID, viewer: Identity
    ) -> UploadSessionRead:
        async with session_scope(ctx.sessionmaker) as session:
            upload = await self._owned(session, model_id, session_id, viewer)
            return _read(upload, await repository.parts(session, upload.id))

    # -- parts ----------------------------------------------------------------------------
    async def put_part(
        self,
        ctx: HubContext,
        model_id: uuid.UUID,
        session_id: uuid.UUID,
        viewer: Identity,
        name: str,
        offset: int,
        chunks: AsyncIterator[bytes],
        declared_length: int | None,
    ) -> UploadPartRead:
        async with session_scope(ctx.sessionmaker) as session:
            shape = await self._shape(session, model_id, session_id, viewer)
            index, entry = _file(shape.files, name)
            part_size = shape.part_size
            size = entry["size"]
            if offset % part_size or offset >= size:
                last = (size - 1) // part_size * part_size
                raise InvalidPartOffset(
                    f"Offset {offset} does not start a part of '{name}': parts start at "
                    f"multiples of the part size, {part_size}, from 0 to {last}.",
                    fields=[FieldError(field="offset", message="not the start of a part")],
                )
            length = min(part_size, size - offset)
            if declared_length is not None and declared_length != length:
                raise PartSizeMismatch(
                    f"The part of '{name}' at offset {offset} is {length} bytes long; this "
                    f"body has {declared_length}. Send exactly bytes {offset} to "
                    f"{offset + length - 1}."
                )
            # A new copy replaces the old one in place (local storage): until it is whole,
            # the part is missing, so a copy that breaks off must be sent again.
            if not await repository.forget_part_if_open(session, session_id, index, offset):
                await self._refuse_closed(session, session_id)
        if offset == 0:
            chunks = sniffed(name, chunks)
        try:
            stored = await ctx.storage.put_part(
                entry["key"],
                entry["upload_id"],
                offset // part_size + 1,
                chunks,
                size=length,
                offset=offset,
            )
        except PartSizeMismatch as exc:
            raise PartSizeMismatch(
                f"The part of '{name}' at offset {offset} must be exactly {length} bytes "
                f"(bytes {offset} to {offset + length - 1}); {exc.detail}"
            ) from exc
        except NotFound as exc:  # its storage was removed: aborted or expired meanwhile
            raise UploadSessionClosed(
                "This upload session was closed while the part arrived; create a new one."
            ) from exc
        async with session_scope(ctx.sessionmaker) as session:
            if not await repository.record_part_if_open(
                session,
                session_id,
                index,
                offset,
                length=length,
                crc32c=stored.crc32c,
                etag=stored.etag,
            ):
                # Closed while the part arrived: closing removed (or is removing) every part.
                await self._refuse_closed(session, session_id)
        return UploadPartRead(name=name, offset=offset, length=length, crc32c=stored.crc32c)

    # -- complete -------------------------------------------------------------------------
    async def complete(
        self, ctx: HubContext, model_id: uuid.UUID, session_id: uuid.UUID, viewer: Identity
    ) -> VersionRead:
        async with session_scope(ctx.sessionmaker) as session:
            upload = await self._owned(session, model_id, session_id, viewer, for_update=True)
            if upload.status == UploadSessionStatus.COMPLETED:
                # A repeated complete (its answer was lost) answers with the version again.
                return await version_service.get(session, model_id, upload.version_id, viewer)
            _ensure_open(upload)
            plan = _stored_parts(upload, await repository.parts(session, upload.id))
            model = await self._uploadable(session, model_id, viewer)
            await version_service.add_uploading(session, model, viewer, upload.version_id)
            upload.completing_since = utcnow()
            version_id = upload.version_id
        files = version_service.version_files(
            ctx, f"{version_prefix(model_id, version_id)}/original"
        )
        try:
            assembled = [
                await ctx.storage.complete_parts(entry["key"], entry["upload_id"], parts)
                for entry, parts in plan
            ]
            for (entry, _), whole in zip(plan, assembled, strict=True):
                sha256 = await files.add_stored(
                    entry["name"],
                    ctx.storage.open(entry["key"]),
                    known=None if whole.sha256 is None else (whole.size, whole.sha256),
                )
                if files.archive and entry["name"] not in files.files:
                    await ctx.storage.delete(entry["key"])  # its members are the version's
                if entry["sha256"] is not None and entry["sha256"] != sha256:
                    raise ChecksumMismatch(
                        f"'{entry['name']}' arrived with SHA-256 {sha256}, not "
                        f"{entry['sha256']}: a part was corrupted on the way. Nothing was "
                        "kept; upload it again in a new upload session."
                    )
            model_format = files.model_format()
        except BaseException:
            await self._close(ctx, session_id, UploadSessionStatus.ABORTED)
            await version_service.discard_upload(ctx, model_id, version_id)
            raise

        async def completed(session: AsyncSession) -> None:
            closing = await repository.get_session(session, session_id, for_update=True)
            if closing is not None:
                closing.status = UploadSessionStatus.COMPLETED
                closing.completing_since = None
                closing.finished_at = utcnow()

        return await version_service.finish_upload(
            ctx, model_id, version_id, files, model_format, also=completed
        )

    # -- abort and expiry -----------------------------------------------------------------
    async def abort(
        self, ctx: HubContext, model_id: uuid.UUID, session_id: uuid.UUID, viewer: Identity
    ) -> None:
        async with session_scope(ctx.sessionmaker) as session:
            upload = await self._owned(session, model_id, session_id, viewer, for_update=True)
            if upload.status == UploadSessionStatus.COMPLETED:
                raise UploadSessionClosed(
                    "This upload session is completed; delete its version instead."
                )
            if upload.completing_since is not None:
                raise UploadSessionCompleting(
                    "This upload session is being completed; delete its version once it "
                    "exists instead."
                )
        await self._close(ctx, session_id, UploadSessionStatus.ABORTED)

    async def _close(
        self, ctx: HubContext, session_id: uuid.UUID, status: UploadSessionStatus
    ) -> None:
        """Mark an open session closed and remove its parts (shielded: a request cancelled
        halfway still cleans up)."""
        with anyio.CancelScope(shield=True):
            async with session_scope(ctx.sessionmaker) as session:
                upload = await repository.get_session(session, session_id, for_update=True)
                if upload is None or upload.status != UploadSessionStatus.OPEN:
                    return
                upload.status = status
                upload.completing_since = None
                upload.finished_at = utcnow()
                await repository.forget_parts(session, upload.id)
                files = list(upload.files)
            await self._remove_parts(ctx, files)

    async def _remove_parts(self, ctx: HubContext, files: Sequence[dict[str, Any]]) -> None:
        with anyio.CancelScope(shield=True):
            for entry in files:
                await ctx.storage.abort_parts(entry["key"], entry["upload_id"])

    async def sweep(self, ctx: HubContext) -> int:
        """Expire open sessions past their time or of deleted models, and end completions
        whose process died (their `uploading` version is failed by the version sweep);
        their parts are removed. Returns how many sessions were closed."""
        now = utcnow()
        stuck = now - timedelta(seconds=ctx.settings.stale_upload_seconds)
        closed: list[list[dict[str, Any]]] = []
        async with session_scope(ctx.sessionmaker) as session:
            for upload in await repository.to_sweep(session, now, stuck):
                dead_completion = upload.completing_since is not None
                if dead_completion:
                    version = await version_repository.get_version(session, upload.version_id)
                    if version is not None and version.status != VersionStatus.UPLOADING:
                        upload.status = UploadSessionStatus.COMPLETED  # only its mark was lost
                        upload.completing_since = None
                        upload.finished_at = now
                        continue
                upload.status = (
                    UploadSessionStatus.ABORTED if dead_completion else UploadSessionStatus.EXPIRED
                )
                upload.completing_since = None
                upload.finished_at = now
                await repository.forget_parts(session, upload.id)
                closed.append(list(upload.files))
        for files in closed:
            try:
                await self._remove_parts(ctx, files)
            except Exception:
                # Logged, not raised: the other sessions' parts still go, and a bucket
                # lifecycle rule (AbortIncompleteMultipartUpload) reclaims what is left.
                logger.exception("could not remove an expired upload session's parts")
        return len(closed)


upload_session_service = UploadSessionService()
