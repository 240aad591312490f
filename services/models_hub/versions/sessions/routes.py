"""Upload sessions of a model: create, read, send a part, complete, abort."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Path, Query, Request, status
from starlette.requests import ClientDisconnect

from services.models_hub.deps import HubDep
from services.models_hub.versions.schemas import VersionRead
from services.models_hub.versions.sessions.schemas import (
    PLAIN_NAME_PATTERN,
    UploadPartRead,
    UploadSessionCreate,
    UploadSessionRead,
)
from services.models_hub.versions.sessions.service import PartInterrupted, upload_session_service
from shared.auth.identity import CurrentUser

router = APIRouter(
    prefix="/api/v1/models/{model_id}/upload-sessions", tags=["model upload sessions"]
)

_PART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "The file's bytes from `offset`: exactly part_size of them, "
                    "or the rest of the file for its last part.",
                }
            }
        },
    }
}


@router.post(
    "",
    response_model=UploadSessionRead,
    status_code=status.HTTP_201_CREATED,
    summary="Start a resumable upload of a new version",
)
async def create_upload_session(
    model_id: uuid.UUID, body: UploadSessionCreate, viewer: CurrentUser, ctx: HubDep
) -> UploadSessionRead:
    return await upload_session_service.create(ctx, model_id, viewer, body)


@router.get(
    "/{session_id}",
    response_model=UploadSessionRead,
    summary="An upload session: which parts arrived, which are missing",
)
async def get_upload_session(
    model_id: uuid.UUID, session_id: uuid.UUID, viewer: CurrentUser, ctx: HubDep
) -> UploadSessionRead:
    return await upload_session_service.get(ctx, model_id, session_id, viewer)


@router.put(
    "/{session_id}/files/{name}",
    response_model=UploadPartRead,
    summary="Send (or send again) one part of a file",
    openapi_extra=_PART_BODY,
)
async def put_upload_part(
    model_id: uuid.UUID,
    session_id: uuid.UUID,
    request: Request,
    viewer: CurrentUser,
    ctx: HubDep,
    name: str = Path(
        pattern=PLAIN_NAME_PATTERN, max_length=255, description="The file's name, as announced."
    ),
    offset: int = Query(ge=0, description="Where the part starts: a multiple of part_size."),
) -> UploadPartRead:
    declared = request.headers.get("content-length")
    return await upload_session_service.put_part(
        ctx,
        model_id,
        session_id,
        viewer,
        name,
        offset,
        _body(request),
        int(declared) if declared and declared.isdigit() else None,
    )


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The part's bytes; a client gone mid-part is an interrupted part (nothing kept), not a
    server error."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect as exc:
        raise PartInterrupted(
            "The connection broke off before the part's end; nothing of it was kept. Send "
            "the part again."
        ) from exc


@router.post(
    "/{session_id}/complete",
    response_model=VersionRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Assemble and check the files into a new version (validated in the background)",
)
async def complete_upload_session(
    model_id: uuid.UUID, session_id: uuid.UUID, viewer: CurrentUser, ctx: HubDep
) -> VersionRead:
    return await upload_session_service.complete(ctx, model_id, session_id, viewer)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Abort an upload session (its parts are removed)",
)
async def abort_upload_session(
    model_id: uuid.UUID, session_id: uuid.UUID, viewer: CurrentUser, ctx: HubDep
) -> None:
    await upload_session_service.abort(ctx, model_id, session_id, viewer)
