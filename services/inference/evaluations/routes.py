"""Evaluation reports: ask for one on a model, follow its progress, read, compare, export."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Path, Query, Response, status

from services.inference.deps import InferenceDep
from services.inference.evaluations import export, progress
from services.inference.evaluations.prompt_sets import builtin_sets
from services.inference.evaluations.schemas import (
    EvaluationComparison,
    EvaluationCreate,
    EvaluationPage,
    EvaluationRead,
    ProgressEvent,
    PromptSet,
)
from services.inference.evaluations.service import evaluation_service, progress_events, read
from shared.auth.identity import CurrentUser
from shared.db import SessionDep
from shared.pagination import CursorQuery, LimitQuery
from shared.sse import EventStreamResponse, LastEventId, event_stream, event_stream_responses

router = APIRouter(tags=["evaluations"])
_OWNER = r"^[A-Za-z0-9_]{1,32}$"
_SLUG = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_STREAM_LIFETIME = 3600.0


@router.post(
    "/api/v1/models/{model_id}/evaluations",
    response_model=EvaluationRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Evaluate a model's active version (a job; follow its events)",
)
async def create_evaluation(
    model_id: uuid.UUID,
    body: EvaluationCreate,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
) -> EvaluationRead:
    return await evaluation_service.create(session, ctx, caller, model_id, body)


@router.post(
    "/api/v1/models/by-ref/{owner}/{slug}/evaluations",
    response_model=EvaluationRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Evaluate a model, named `<owner>/<slug>`",
)
async def create_evaluation_by_ref(
    body: EvaluationCreate,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
    owner: str = Path(pattern=_OWNER),
    slug: str = Path(pattern=_SLUG),
) -> EvaluationRead:
    return await evaluation_service.create(session, ctx, caller, f"{owner}/{slug}", body)


@router.get(
    "/api/v1/models/{model_id}/evaluations",
    response_model=EvaluationPage,
    summary="Your evaluations of a model, newest first",
)
async def list_model_evaluations(
    model_id: uuid.UUID,
    caller: CurrentUser,
    session: SessionDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> EvaluationPage:
    return await evaluation_service.page(
        session, caller, model_id=model_id, cursor=cursor, limit=limit
    )


@router.get(
    "/api/v1/evaluations", response_model=EvaluationPage, summary="Your evaluations, newest first"
)
async def list_evaluations(
    caller: CurrentUser,
    session: SessionDep,
    model_id: uuid.UUID | None = Query(default=None, description="Only this model's."),
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> EvaluationPage:
    return await evaluation_service.page(
        session, caller, model_id=model_id, cursor=cursor, limit=limit
    )


@router.get(
    "/api/v1/evaluations/prompt-sets",
    response_model=list[PromptSet],
    summary="The built-in prompt sets, every version",
)
async def list_prompt_sets(_: CurrentUser) -> list[PromptSet]:
    return list(builtin_sets())


@router.get(
    "/api/v1/evaluations/compare",
    response_model=EvaluationComparison,
    summary="Two completed evaluations side by side, differences highlighted",
)
async def compare_evaluations(
    caller: CurrentUser,
    session: SessionDep,
    a: uuid.UUID = Query(description="The first evaluation (the baseline)."),
    b: uuid.UUID = Query(description="The second evaluation."),
) -> EvaluationComparison:
    return await evaluation_service.compare(session, caller, a, b)


@router.get(
    "/api/v1/evaluations/{evaluation_id}",
    response_model=EvaluationRead,
    summary="An evaluation: status, progress and (once completed) its report",
)
async def get_evaluation(
    evaluation_id: uuid.UUID, caller: CurrentUser, session: SessionDep
) -> EvaluationRead:
    return await evaluation_service.get(session, caller, evaluation_id)


@router.get(
    "/api/v1/evaluations/{evaluation_id}/export",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
    summary="Download a completed evaluation as JSON or CSV",
)
async def export_evaluation(
    evaluation_id: uuid.UUID,
    caller: CurrentUser,
    session: SessionDep,
    format: Literal["json", "csv"] = Query(default="json"),
    table: Literal["metrics", "responses"] = Query(
        default="metrics", description="CSV only: the metrics (long format) or every answer."
    ),
) -> Response:
    evaluation = await evaluation_service.finished(session, caller, evaluation_id)
    assert evaluation.report is not None
    name = f"evaluation-{evaluation.id}"
    if format == "csv":
        return Response(
            export.to_csv(evaluation.report, table),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{table}.csv"'},
        )
    return Response(
        read(evaluation).model_dump_json(),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
    )


@router.get(
    "/api/v1/evaluations/{evaluation_id}/events",
    responses=event_stream_responses(
        ProgressEvent,
        description="Server-sent events: `progress` (status, stage, done/total, percent) while "
        "it runs, then one `done`. Each has an id: reconnect with `Last-Event-ID` to resume.",
    ),
    summary="Follow an evaluation's progress (SSE, resumable)",
)
async def evaluation_events(
    evaluation_id: uuid.UUID,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
    last_event_id: LastEventId = None,
) -> EventStreamResponse:
    after = progress.start_after(last_event_id)
    evaluation = await evaluation_service.get(session, caller, evaluation_id)
    return event_stream(progress_events(ctx, evaluation, after), lifetime=_STREAM_LIFETIME)
