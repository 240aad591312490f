"""The prompt lab: analyze a prompt for bias, suggest rewrites, A/B test a rewrite."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Query, Response, status

from services.inference.deps import InferenceDep
from services.inference.prompt_lab import export
from services.inference.prompt_lab.schemas import (
    ABCreate,
    ABRunPage,
    ABRunRead,
    AnalyzeRead,
    AnalyzeRequest,
    RewriteRead,
    RewriteRequest,
)
from services.inference.prompt_lab.service import prompt_lab_service
from shared.auth.identity import CurrentUser
from shared.db import SessionDep
from shared.pagination import CursorQuery, LimitQuery

router = APIRouter(prefix="/api/v1/prompt-lab", tags=["prompt lab"])


@router.post(
    "/analyze",
    response_model=AnalyzeRead,
    summary="Find potential bias in a prompt (lexicon, counterfactual swap, model judgement)",
)
async def analyze(body: AnalyzeRequest, caller: CurrentUser, ctx: InferenceDep) -> AnalyzeRead:
    return await prompt_lab_service.analyze(ctx, caller, body)


@router.post(
    "/rewrite",
    response_model=RewriteRead,
    summary="Rewrites that reduce bias: rule-based, and model-assisted with `model`",
)
async def rewrite(body: RewriteRequest, caller: CurrentUser, ctx: InferenceDep) -> RewriteRead:
    return await prompt_lab_service.rewrite(ctx, caller, body)


@router.post(
    "/ab-tests",
    response_model=ABRunRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="A/B test a prompt against its rewrite on one or more models (a job)",
)
async def create_ab_test(
    body: ABCreate, caller: CurrentUser, session: SessionDep, ctx: InferenceDep
) -> ABRunRead:
    return await prompt_lab_service.create_ab(session, ctx, caller, body)


@router.get("/ab-tests", response_model=ABRunPage, summary="Your A/B runs, newest first")
async def list_ab_tests(
    caller: CurrentUser, session: SessionDep, cursor: CursorQuery = None, limit: LimitQuery = 20
) -> ABRunPage:
    return await prompt_lab_service.page(session, caller, cursor=cursor, limit=limit)


@router.get(
    "/ab-tests/{run_id}",
    response_model=ABRunRead,
    summary="An A/B run: status, metrics side by side, every output",
)
async def get_ab_test(run_id: uuid.UUID, caller: CurrentUser, session: SessionDep) -> ABRunRead:
    return await prompt_lab_service.get(session, caller, run_id)


@router.get(
    "/ab-tests/{run_id}/export",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
    summary="Download an A/B run as JSON or CSV",
)
async def export_ab_test(
    run_id: uuid.UUID,
    caller: CurrentUser,
    session: SessionDep,
    format: Literal["json", "csv"] = Query(default="json"),
) -> Response:
    run = await prompt_lab_service.get(session, caller, run_id)
    name = f"ab-test-{run.id}"
    if format == "csv":
        return Response(
            export.to_csv(run),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        run.model_dump_json(),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
    )
