"""Moderation (admins only): search and export everyone's conversations and messages."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from services.inference.deps import InferenceDep
from services.inference.models import MessageRole
from services.inference.moderation.repository import ConversationFilter, MessageFilter
from services.inference.moderation.schemas import ModeratedConversation, ModeratedMessageRead
from services.inference.moderation.service import moderation_service
from shared.auth.identity import AdminUser
from shared.db import SessionDep, utcnow
from shared.fields import Text, Timestamp
from shared.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

_Q = Query(
    default=None,
    min_length=1,
    max_length=200,
    description='Full-text search (web-search syntax: words, "a phrase", or, -word).',
)


def _conversation_filter(
    q: Text | None = _Q,
    owner_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    include_deleted: bool = Query(default=True, description="Also deleted conversations."),
) -> ConversationFilter:
    return ConversationFilter(q, owner_id, model_id, since, until, include_deleted)


def _message_filter(
    q: Text | None = _Q,
    role: MessageRole | None = None,
    model_id: uuid.UUID | None = None,
    author_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    model_ref: str | None = Query(
        default=None,
        max_length=100,
        pattern=r"^[^/\s]+/[^/\s]+$",
        description='A model by its "owner/name" (also one since deleted).',
    ),
) -> MessageFilter:
    return MessageFilter(
        q, role, model_id, author_id, conversation_id, since, until, model_ref=model_ref
    )


ConversationWhere = Annotated[ConversationFilter, Depends(_conversation_filter)]
MessageWhere = Annotated[MessageFilter, Depends(_message_filter)]


def _csv(lines: object, name: str) -> StreamingResponse:
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        lines,  # type: ignore[arg-type]
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"'},
    )


@router.get(
    "/conversations",
    response_model=Page[ModeratedConversation],
    summary="Search everyone's conversations, newest first",
)
async def list_conversations(
    admin: AdminUser,
    session: SessionDep,
    where: ConversationWhere,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ModeratedConversation]:
    return await moderation_service.conversations(session, where, cursor=cursor, limit=limit)


@router.get(
    "/conversations/export",
    summary="Export the matching conversations as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_conversations(
    admin: AdminUser, where: ConversationWhere, ctx: InferenceDep
) -> StreamingResponse:
    lines = moderation_service.export_conversations(ctx.sessionmaker, where)
    return _csv(lines, "conversations")


@router.get(
    "/messages",
    response_model=Page[ModeratedMessageRead],
    summary="Search everyone's messages, newest first",
)
async def list_messages(
    admin: AdminUser,
    session: SessionDep,
    where: MessageWhere,
    ctx: InferenceDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ModeratedMessageRead]:
    return await moderation_service.messages(
        session, ctx.accounts, where, cursor=cursor, limit=limit
    )


@router.get(
    "/messages/export",
    summary="Export the matching messages as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_messages(
    admin: AdminUser, where: MessageWhere, ctx: InferenceDep
) -> StreamingResponse:
    return _csv(moderation_service.export_messages(ctx.sessionmaker, where), "messages")
