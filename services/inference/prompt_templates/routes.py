"""Prompt templates: built-in ones for everyone, your own (CRUD), and a render preview."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from services.inference.deps import InferenceDep
from services.inference.prompt_templates.schemas import (
    RenderRead,
    RenderRequest,
    TemplateCreate,
    TemplatePage,
    TemplateRead,
    TemplateUpdate,
)
from services.inference.prompt_templates.service import limits_of, prompt_template_service
from shared.auth.identity import CurrentUser
from shared.db import SessionDep
from shared.pagination import CursorQuery, LimitQuery

router = APIRouter(prefix="/api/v1/prompt-templates", tags=["prompt templates"])


@router.get("", response_model=TemplatePage, summary="Built-in templates and yours, newest first")
async def list_templates(
    caller: CurrentUser, session: SessionDep, cursor: CursorQuery = None, limit: LimitQuery = 50
) -> TemplatePage:
    return await prompt_template_service.page(session, caller, cursor=cursor, limit=limit)


@router.post(
    "",
    response_model=TemplateRead,
    status_code=status.HTTP_201_CREATED,
    summary="Save a template of your own",
)
async def create_template(
    body: TemplateCreate, caller: CurrentUser, session: SessionDep, ctx: InferenceDep
) -> TemplateRead:
    return await prompt_template_service.create(
        session, caller, body, limits_of(ctx.settings), ctx.settings.prompt_templates_per_user
    )


@router.get("/{template_id}", response_model=TemplateRead, summary="A template")
async def get_template(
    template_id: uuid.UUID, caller: CurrentUser, session: SessionDep
) -> TemplateRead:
    return await prompt_template_service.get(session, caller, template_id)


@router.patch("/{template_id}", response_model=TemplateRead, summary="Change your template")
async def update_template(
    template_id: uuid.UUID,
    body: TemplateUpdate,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
) -> TemplateRead:
    return await prompt_template_service.update(
        session, caller, template_id, body, limits_of(ctx.settings)
    )


@router.delete(
    "/{template_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete your template"
)
async def delete_template(template_id: uuid.UUID, caller: CurrentUser, session: SessionDep) -> None:
    await prompt_template_service.delete(session, caller, template_id)


@router.post(
    "/{template_id}/render", response_model=RenderRead, summary="Preview the rendered prompt"
)
async def render_template(
    template_id: uuid.UUID,
    body: RenderRequest,
    caller: CurrentUser,
    session: SessionDep,
    ctx: InferenceDep,
) -> RenderRead:
    text = await prompt_template_service.render(
        session, caller, template_id, body.variables, limits=limits_of(ctx.settings)
    )
    return RenderRead(template_id=template_id, text=text)
