"""Messages of a conversation: send, regenerate, watch, stop, rate; feedback per model."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request, Response

from services.inference.conversations.schemas import MessageRead, ModelRef
from services.inference.deps import InferenceDep
from services.inference.messages.schemas import (
    FeedbackRead,
    FeedbackSummary,
    FeedbackUpdate,
    MessageCreate,
    MessageDelta,
    MessageExchange,
    MessageStart,
    RegenerateRequest,
)
from services.inference.messages.service import message_service
from shared.auth.identity import CurrentUser
from shared.db import SessionDep
from shared.sse import LastEventId, event_stream_responses

router = APIRouter(prefix="/api/v1/conversations", tags=["messages"])

_EVENTS = (
    "Server-sent events, each with the Redis stream id as `id`: `event: start` (MessageStart), "
    "`event: delta` (MessageDelta) per piece of text, then `event: done` (MessageRead, the "
    "final message). Send `Last-Event-ID` to resume after the last event you saw."
)
_STREAMED = event_stream_responses(MessageStart, MessageDelta, MessageRead, description=_EVENTS)


@router.get(
    "/feedback/summary",
    response_model=FeedbackSummary,
    summary="Thumbs on a model's answers per version (its owner and admins)",
)
async def feedback_summary(
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
    model: ModelRef = Query(description="`<owner>/<slug>` of a model you own."),
) -> FeedbackSummary:
    return await message_service.feedback_summary(ctx, session, caller, model)


@router.post(
    "/{conversation_id}/messages",
    response_model=MessageExchange,
    responses=_STREAMED,
    summary="Send a message; the answer streams (SSE) or comes whole (JSON)",
)
async def send_message(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    request: Request,
    caller: CurrentUser,
    ctx: InferenceDep,
) -> Response | MessageExchange:
    return await message_service.send(ctx, request, caller, conversation_id, body)


@router.post(
    "/{conversation_id}/messages/{message_id}/regenerate",
    response_model=MessageExchange,
    responses=_STREAMED,
    summary="Another answer to the same turn (a sibling), maybe with other parameters or model",
)
async def regenerate(
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    request: Request,
    caller: CurrentUser,
    ctx: InferenceDep,
    body: RegenerateRequest | None = None,
) -> Response | MessageExchange:
    return await message_service.regenerate(
        ctx, request, caller, conversation_id, message_id, body or RegenerateRequest()
    )


@router.get(
    "/{conversation_id}/messages/{message_id}/stream",
    responses=event_stream_responses(MessageStart, MessageDelta, MessageRead, description=_EVENTS),
    summary="Watch an answer (re-attach): its events after Last-Event-ID, live",
)
async def watch(
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    caller: CurrentUser,
    ctx: InferenceDep,
    last_event_id: LastEventId = None,
) -> Response:
    return await message_service.watch(ctx, caller, conversation_id, message_id, last_event_id)


@router.post(
    "/{conversation_id}/messages/{message_id}/stop",
    response_model=MessageRead,
    summary="Stop an answer being written; it keeps its text so far (cancelled)",
)
async def stop(
    conversation_id: uuid.UUID, message_id: uuid.UUID, caller: CurrentUser, ctx: InferenceDep
) -> MessageRead:
    return await message_service.stop(ctx, caller, conversation_id, message_id)


@router.put(
    "/{conversation_id}/messages/{message_id}/feedback",
    response_model=FeedbackRead,
    summary="Rate an answer (thumbs up or down, optional comment)",
)
async def put_feedback(
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    body: FeedbackUpdate,
    caller: CurrentUser,
    session: SessionDep,
) -> FeedbackRead:
    return await message_service.put_feedback(session, caller, conversation_id, message_id, body)


@router.delete(
    "/{conversation_id}/messages/{message_id}/feedback",
    status_code=204,
    summary="Take back your rating of an answer",
)
async def delete_feedback(
    conversation_id: uuid.UUID, message_id: uuid.UUID, caller: CurrentUser, session: SessionDep
) -> Response:
    await message_service.delete_feedback(session, caller, conversation_id, message_id)
    return Response(status_code=204)
