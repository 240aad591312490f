"""Versions of a model: upload, list, read, activate (or roll back), delete, download."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import StreamingResponse

from services.models_hub.deps import HubDep
from services.models_hub.versions.schemas import FILE_NAME_PATTERN, VersionRead
from services.models_hub.versions.service import version_service
from services.models_hub.versions.sessions.routes import router as sessions_router
from shared.auth.identity import CurrentUser, OptionalUser
from shared.db import SessionDep

router = APIRouter()
versions = APIRouter(prefix="/api/v1/models/{model_id}/versions", tags=["model versions"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "config.json, *.safetensors, tokenizer files "
                            "(and an optional chat template); or one .gguf; or one .tar, "
                            ".tar.gz or .zip of a model folder.",
                        },
                        "checksums": {
                            "type": "string",
                            "description": 'Optional JSON {"file name": "sha256 hex"} to verify.',
                        },
                    },
                }
            }
        },
    }
}


@versions.get("", response_model=list[VersionRead], summary="A model's versions, newest first")
async def list_versions(
    model_id: uuid.UUID, session: SessionDep, viewer: OptionalUser
) -> list[VersionRead]:
    return await version_service.list(session, model_id, viewer)


@versions.post(
    "",
    response_model=VersionRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a new version (validated in the background)",
    openapi_extra=_UPLOAD_BODY,
)
async def upload_version(
    model_id: uuid.UUID, request: Request, viewer: CurrentUser, ctx: HubDep
) -> VersionRead:
    return await version_service.upload(ctx, request, model_id, viewer)


@versions.get("/{version_id}", response_model=VersionRead, summary="A version")
async def get_version(
    model_id: uuid.UUID, version_id: uuid.UUID, session: SessionDep, viewer: OptionalUser
) -> VersionRead:
    return await version_service.get(session, model_id, version_id, viewer)


@versions.post(
    "/{version_id}/activate",
    response_model=VersionRead,
    summary="Serve this ready version (also how to roll back)",
)
async def activate_version(
    model_id: uuid.UUID, version_id: uuid.UUID, viewer: CurrentUser, session: SessionDep
) -> VersionRead:
    return await version_service.activate(session, model_id, version_id, viewer)


@versions.delete(
    "/{version_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a version"
)
async def delete_version(
    model_id: uuid.UUID,
    version_id: uuid.UUID,
    viewer: CurrentUser,
    session: SessionDep,
    ctx: HubDep,
) -> None:
    await version_service.delete(session, ctx, model_id, version_id, viewer)


@versions.get("/{version_id}/files/{name:path}", summary="Download a file as uploaded")
async def download_file(
    model_id: uuid.UUID,
    version_id: uuid.UUID,
    session: SessionDep,
    viewer: OptionalUser,
    ctx: HubDep,
    name: str = Path(pattern=FILE_NAME_PATTERN, description="A file's name, as listed."),
) -> StreamingResponse:
    size, chunks = await version_service.file_stream(
        session, ctx, model_id, version_id, name, viewer
    )
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{name.rsplit("/", 1)[-1]}"',
        },
    )


router.include_router(versions)
router.include_router(sessions_router)
