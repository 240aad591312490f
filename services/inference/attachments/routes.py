"""A conversation's attachments: upload (writers), list, read, download, delete (writers)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, status
from fastapi.responses import StreamingResponse

from services.inference.attachments.schemas import AttachmentDetail, AttachmentRead
from services.inference.attachments.service import MEDIA_TYPES, attachment_service
from services.inference.deps import InferenceDep
from services.inference.models import AttachmentKind
from shared.auth.identity import CurrentUser
from shared.db import SessionDep

router = APIRouter(
    prefix="/api/v1/conversations/{conversation_id}/attachments", tags=["attachments"]
)

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "One .txt, .md, .json, .csv, .docx or .pdf file "
                            "(recognised by its content), up to INFERENCE_ATTACHMENT_MAX_BYTES.",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    response_model=AttachmentRead,
    status_code=status.HTTP_201_CREATED,
    summary="Attach a file as context (its text is extracted and counted)",
    openapi_extra=_UPLOAD_BODY,
)
async def upload_attachment(
    conversation_id: uuid.UUID, request: Request, caller: CurrentUser, ctx: InferenceDep
) -> AttachmentRead:
    return await attachment_service.upload(ctx, request, conversation_id, caller)


@router.get("", response_model=list[AttachmentRead], summary="A conversation's attachments")
async def list_attachments(
    conversation_id: uuid.UUID, caller: CurrentUser, session: SessionDep
) -> list[AttachmentRead]:
    return await attachment_service.listing(session, caller, conversation_id)


@router.get(
    "/{attachment_id}", response_model=AttachmentDetail, summary="An attachment and its text"
)
async def get_attachment(
    conversation_id: uuid.UUID, attachment_id: uuid.UUID, caller: CurrentUser, session: SessionDep
) -> AttachmentDetail:
    return await attachment_service.get(session, caller, conversation_id, attachment_id)


_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/{attachment_id}/content",
    summary="Download the original file",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file as uploaded, with its kind's media type.",
            "content": {media.split(";")[0]: _BINARY for media in MEDIA_TYPES.values()},
        }
    },
)
async def download_attachment(
    conversation_id: uuid.UUID,
    attachment_id: uuid.UUID,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
) -> StreamingResponse:
    attachment, chunks = await attachment_service.original(
        session, ctx.storage, caller, conversation_id, attachment_id
    )
    fallback = attachment.filename.encode("ascii", "replace").decode().replace('"', "_")
    return StreamingResponse(
        chunks,
        media_type=MEDIA_TYPES[AttachmentKind(attachment.kind)],
        headers={
            "Content-Length": str(attachment.size),
            "Content-Disposition": (
                f"attachment; filename=\"{fallback}\"; filename*=UTF-8''"
                f"{quote(attachment.filename, safe='')}"
            ),
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.delete(
    "/{attachment_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove an attachment"
)
async def delete_attachment(
    conversation_id: uuid.UUID,
    attachment_id: uuid.UUID,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
) -> None:
    await attachment_service.delete(session, ctx.storage, caller, conversation_id, attachment_id)
