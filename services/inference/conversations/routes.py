"""Conversations: create, list and search, read, change, switch model, choose the branch,
delete and restore, export and import, share."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, Query, Response, status
from starlette.convertors import Convertor, register_url_convertor

from services.inference.conversations import export, importer
from services.inference.conversations.schemas import (
    USERNAME_PATTERN,
    ConversationCreate,
    ConversationDeleted,
    ConversationExport,
    ConversationImport,
    ConversationList,
    ConversationRead,
    ConversationUpdate,
    CurrentBranch,
    ExportFormat,
    ParticipantCreate,
    ParticipantRead,
    ParticipantUpdate,
)
from services.inference.conversations.service import conversation_service
from services.inference.deps import InferenceDep
from shared.auth.identity import CurrentUser
from shared.db import SessionDep
from shared.fields import Text
from shared.pagination import CursorQuery, LimitQuery

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


class _NotImport(Convertor[str]):
    """Any path segment but `import`: `/api/v1/conversations/import` is never taken for a
    conversation id (other methods there get 405, not a 422 about the id), while a malformed id
    still reaches validation (422)."""

    regex = "(?!import$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


_NOT_IMPORT = "conversation_segment"
register_url_convertor(_NOT_IMPORT, _NotImport())
Username = Path(pattern=USERNAME_PATTERN, description="A participant's username.")


@router.post(
    "",
    response_model=ConversationRead,
    status_code=status.HTTP_201_CREATED,
    summary="Start a conversation with a model",
)
async def create_conversation(
    body: ConversationCreate, caller: CurrentUser, session: SessionDep, ctx: InferenceDep
) -> ConversationRead:
    conversation = await conversation_service.create(session, ctx, caller, body)
    return await conversation_service.read(session, caller, conversation)


@router.post(
    "/import",
    response_model=ConversationRead,
    status_code=status.HTTP_201_CREATED,
    summary="Import a conversation from its JSON export, as a new conversation of yours",
)
async def import_conversation(
    body: ConversationImport, caller: CurrentUser, session: SessionDep, ctx: InferenceDep
) -> ConversationRead:
    conversation = await importer.import_conversation(session, ctx, caller, body)
    return await conversation_service.read(session, caller, conversation)


@router.get(
    "",
    response_model=ConversationList,
    summary="Your conversations and those shared with you, newest activity first, by day",
)
async def list_conversations(
    caller: CurrentUser,
    session: SessionDep,
    q: Text | None = Query(
        default=None,
        max_length=200,
        description='Words in the title or any message (web-search syntax: "a phrase", or, -word).',
    ),
    model_id: uuid.UUID | None = Query(default=None, description="Only this model's."),
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> ConversationList:
    return await conversation_service.page(
        session, caller, model_id=model_id, q=q, cursor=cursor, limit=limit
    )


@router.get(
    f"/{{conversation_id:{_NOT_IMPORT}}}",
    response_model=ConversationRead,
    summary="A conversation with its message tree and current branch",
)
async def get_conversation(
    conversation_id: uuid.UUID, caller: CurrentUser, session: SessionDep
) -> ConversationRead:
    conversation = await conversation_service.accessible(session, caller, conversation_id)
    return await conversation_service.read(session, caller, conversation)


@router.patch(
    f"/{{conversation_id:{_NOT_IMPORT}}}",
    response_model=ConversationRead,
    summary="Rename, change the system prompt or parameters, or switch the model",
)
async def update_conversation(
    conversation_id: uuid.UUID,
    body: ConversationUpdate,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
) -> ConversationRead:
    conversation = await conversation_service.update(session, ctx, caller, conversation_id, body)
    return await conversation_service.read(session, caller, conversation)


@router.put(
    "/{conversation_id}/current",
    response_model=ConversationRead,
    summary="Choose the current branch",
)
async def set_current_branch(
    conversation_id: uuid.UUID, body: CurrentBranch, caller: CurrentUser, session: SessionDep
) -> ConversationRead:
    conversation = await conversation_service.set_current(
        session, caller, conversation_id, body.message_id
    )
    return await conversation_service.read(session, caller, conversation)


@router.delete(
    f"/{{conversation_id:{_NOT_IMPORT}}}",
    response_model=ConversationDeleted,
    summary="Delete a conversation (restorable for a while)",
)
async def delete_conversation(
    conversation_id: uuid.UUID, caller: CurrentUser, session: SessionDep, ctx: InferenceDep
) -> ConversationDeleted:
    return await conversation_service.delete(session, ctx.settings, caller, conversation_id)


@router.post(
    "/{conversation_id}/restore",
    response_model=ConversationRead,
    summary="Undo a delete within the undo window",
)
async def restore_conversation(
    conversation_id: uuid.UUID, caller: CurrentUser, session: SessionDep, ctx: InferenceDep
) -> ConversationRead:
    conversation = await conversation_service.restore(
        session, ctx.settings, caller, conversation_id
    )
    return await conversation_service.read(session, caller, conversation)


@router.get(
    "/{conversation_id}/export",
    response_model=ConversationExport,
    responses={200: {"content": {"text/markdown": {}}}},
    summary="Export as JSON (everything) or Markdown (the current branch)",
)
async def export_conversation(
    conversation_id: uuid.UUID,
    caller: CurrentUser,
    session: SessionDep,
    format: ExportFormat = ExportFormat.JSON,
) -> ConversationExport | Response:
    conversation, document = await conversation_service.export(
        session, caller, conversation_id, format
    )
    if isinstance(document, ConversationExport):
        return document
    name = export.filename(conversation.id, conversation.title, "md")
    return Response(
        document,
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/{conversation_id}/participants",
    response_model=list[ParticipantRead],
    summary="Who the conversation is shared with",
)
async def list_participants(
    conversation_id: uuid.UUID, caller: CurrentUser, session: SessionDep
) -> list[ParticipantRead]:
    return await conversation_service.participants(session, caller, conversation_id)


@router.post(
    "/{conversation_id}/participants",
    response_model=ParticipantRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ParticipantRead, "description": "Already in: their role changed."}},
    summary="Share with a user (read, or read-write); changes the role of one already in",
)
async def add_participant(
    conversation_id: uuid.UUID,
    body: ParticipantCreate,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
    response: Response,
) -> ParticipantRead:
    participant, added = await conversation_service.add_participant(
        session, ctx, caller, conversation_id, body
    )
    if not added:
        response.status_code = status.HTTP_200_OK
    return participant


@router.patch(
    "/{conversation_id}/participants/{username}",
    response_model=ParticipantRead,
    summary="Change a participant's role",
)
async def change_participant(
    conversation_id: uuid.UUID,
    body: ParticipantUpdate,
    caller: CurrentUser,
    session: SessionDep,
    username: str = Username,
) -> ParticipantRead:
    return await conversation_service.change_participant(
        session, caller, conversation_id, username, body.role
    )


@router.delete(
    "/{conversation_id}/participants/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop sharing with a user (or leave, as that user)",
)
async def remove_participant(
    conversation_id: uuid.UUID,
    caller: CurrentUser,
    session: SessionDep,
    username: str = Username,
) -> None:
    await conversation_service.remove_participant(session, caller, conversation_id, username)
