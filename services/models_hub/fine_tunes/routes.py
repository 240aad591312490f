"""Fine-tunes: start one on a model, read, list, cancel, follow its progress live."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, status

from services.models_hub.deps import HubDep
from services.models_hub.fine_tunes import events
from services.models_hub.fine_tunes.schemas import (
    FineTuneEvent,
    FineTuneRead,
    Hyperparameters,
    LineageRead,
)
from services.models_hub.fine_tunes.service import fine_tune_service
from shared.auth.identity import CurrentUser, OptionalUser
from shared.db import SessionDep
from shared.pagination import CursorQuery, LimitQuery, Page
from shared.sse import (
    EventStreamResponse,
    ServerSentEvent,
    event_stream,
    event_stream_responses,
)

router = APIRouter(tags=["fine-tunes"])

STREAM_LIFETIME_SECONDS = 3600


def _form_schema() -> dict[str, Any]:
    """The multipart form: the dataset files, and the hyperparameters as fields with the
    bounds `Hyperparameters` checks (its schema, `$ref`s inlined: a form has no `$defs`)."""
    model = Hyperparameters.model_json_schema()
    definitions = model.get("$defs", {})
    hyperparameters: dict[str, Any] = {}
    for name, schema in model["properties"].items():
        ref = schema.pop("$ref", None)
        if ref is not None:
            definition = dict(definitions[ref.rsplit("/", 1)[-1]])
            definition.pop("title", None)
            schema = {**definition, **schema}
        hyperparameters[name] = schema
    return {
        "type": "object",
        "required": ["training_file"],
        # Any other field is refused (422 unexpected_field).
        "additionalProperties": False,
        "properties": {
            "training_file": {
                "type": "string",
                "format": "binary",
                "description": 'JSONL: one {"messages": [{"role", "content"}, ...]} or '
                '{"text": "..."} per line, each within max_seq_length tokens; at most '
                "MODELS_HUB_FINETUNE_MAX_FILE_BYTES (413 past it).",
            },
            "validation_file": {
                "type": "string",
                "format": "binary",
                "description": "Optional JSONL of the same shape, for the validation loss.",
            },
            **hyperparameters,
        },
    }


_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": _form_schema()}},
    }
}


def _document_last_event_id(schema: dict[str, Any]) -> None:
    # A header is sent or not, never null.
    schema.pop("anyOf", None)
    schema.update(type="string", pattern=events.LAST_EVENT_ID_PATTERN)


# Documented here, checked by `events.start_after`: a bad id is one 400 naming the rule.
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        json_schema_extra=_document_last_event_id,
        description="The `id` of the last event received (like `1733450000000-0`): the stream "
        "resumes after it. Without it the stream replays from the start.",
    ),
]


@router.post(
    "/api/v1/models/{model_id}/fine-tunes",
    response_model=FineTuneRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Fine-tune the model's active version on a JSONL dataset (owner only)",
    description="The datasets are checked before the job exists: every line's shape, its "
    "tokens with the model's tokenizer against max_seq_length, and the steps it makes "
    "(epochs x examples / batch_size, at most MODELS_HUB_FINETUNE_MAX_STEPS); a 422 names "
    "each bad line.",
    openapi_extra=_CREATE_BODY,
)
async def create_fine_tune(
    model_id: uuid.UUID, request: Request, viewer: CurrentUser, ctx: HubDep
) -> FineTuneRead:
    return await fine_tune_service.create(ctx, request, model_id, viewer)


@router.get(
    "/api/v1/models/{model_id}/fine-tunes",
    response_model=Page[FineTuneRead],
    summary="Your fine-tunes of a model, newest first",
)
async def list_model_fine_tunes(
    model_id: uuid.UUID,
    session: SessionDep,
    viewer: CurrentUser,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> Page[FineTuneRead]:
    items, next_cursor = await fine_tune_service.list_for_model(
        session, model_id, viewer, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get("/api/v1/fine-tunes", response_model=Page[FineTuneRead], summary="Your fine-tunes")
async def list_my_fine_tunes(
    session: SessionDep, viewer: CurrentUser, cursor: CursorQuery = None, limit: LimitQuery = 20
) -> Page[FineTuneRead]:
    items, next_cursor = await fine_tune_service.list_mine(
        session, viewer, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/api/v1/fine-tunes/{fine_tune_id}",
    response_model=FineTuneRead,
    summary="A fine-tune: status, queue position, progress and metrics history",
)
async def get_fine_tune(
    fine_tune_id: uuid.UUID, session: SessionDep, viewer: CurrentUser
) -> FineTuneRead:
    return await fine_tune_service.get(session, fine_tune_id, viewer)


@router.post(
    "/api/v1/fine-tunes/{fine_tune_id}/cancel",
    response_model=FineTuneRead,
    summary="Cancel a fine-tune (a running one stops within a few steps; no version is kept)",
)
async def cancel_fine_tune(
    fine_tune_id: uuid.UUID, session: SessionDep, viewer: CurrentUser, ctx: HubDep
) -> FineTuneRead:
    return await fine_tune_service.cancel(session, ctx, fine_tune_id, viewer)


@router.get(
    "/api/v1/fine-tunes/{fine_tune_id}/events",
    summary="A fine-tune's status and progress, live",
    description="Server-sent events: `status` when the state changes, `progress` per report, "
    "ending after the final state. Every event has an id: reconnect with `Last-Event-ID` to "
    "resume after it (without, the stream replays from the start).",
    responses=event_stream_responses(FineTuneEvent, description="status and progress events"),
)
async def fine_tune_events(
    fine_tune_id: uuid.UUID,
    session: SessionDep,
    viewer: CurrentUser,
    ctx: HubDep,
    last_event_id: LastEventId = None,
) -> EventStreamResponse:
    after = events.start_after(last_event_id)
    await fine_tune_service.ensure_visible(session, fine_tune_id, viewer)
    # The stream outlives the request's session: release it before streaming.
    await session.close()

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for stream_id, kind, event in events.follow(
            ctx.redis,
            fine_tune_id,
            after,
            job_finished=lambda: fine_tune_service.final_event(ctx, fine_tune_id),
        ):
            yield ServerSentEvent(data=event, event=kind, id=stream_id)

    return event_stream(stream(), lifetime=STREAM_LIFETIME_SECONDS)


@router.get(
    "/api/v1/models/{model_id}/lineage",
    response_model=LineageRead,
    tags=["model versions"],
    summary="The model's version tree: fine-tuned versions under their base versions",
)
async def model_lineage(
    model_id: uuid.UUID, session: SessionDep, viewer: OptionalUser
) -> LineageRead:
    return await fine_tune_service.lineage(session, model_id, viewer)
