"""Endpoints for other services, each answering only the services that need it.

`/internal/models/...` is the one access check the inference, conversation and feed services
use (see internal/service.py): only the inference service gets a remote model's provider key.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.models_hub.deps import HubDep
from services.models_hub.internal.service import internal_service
from shared.auth.identity import OptionalUser
from shared.auth.service_credentials import ServiceName, require_service
from shared.db import SessionDep
from shared.models_client import ModelAccess, OpenModels, OpenModelsQuestion, UsableModel

router = APIRouter(prefix="/internal/models", include_in_schema=False)
Caller = Annotated[ServiceName, Depends(require_service(ServiceName.INFERENCE, ServiceName.FEED))]
# A ready version to serve instead of the active one (a model named `<owner>/<slug>@<number>`).
VersionNumber = Annotated[int | None, Query(ge=1, alias="version")]


@router.get("", response_model=list[UsableModel])
async def usable(_: Caller, session: SessionDep, viewer: OptionalUser) -> list[UsableModel]:
    """Ready models the caller's user may use and should see listed."""
    return await internal_service.usable(session, viewer)


@router.post("/open", response_model=OpenModels)
async def open_models(_: Caller, session: SessionDep, body: OpenModelsQuestion) -> OpenModels:
    """Which of the given models anyone may use: one question for a listing's models, where
    `GET /{model_id}` without a viewer would be one call each."""
    return OpenModels(open=await internal_service.open_ids(session, body.ids))


@router.get("/by-ref/{owner}/{slug}", response_model=ModelAccess)
async def by_ref(
    owner: str,
    slug: str,
    caller: Caller,
    session: SessionDep,
    viewer: OptionalUser,
    ctx: HubDep,
    version: VersionNumber = None,
) -> ModelAccess:
    return await internal_service.by_ref(session, ctx, owner, slug, viewer, caller, version)


@router.get("/{model_id}", response_model=ModelAccess)
async def by_id(
    model_id: uuid.UUID,
    caller: Caller,
    session: SessionDep,
    viewer: OptionalUser,
    ctx: HubDep,
    version: VersionNumber = None,
) -> ModelAccess:
    return await internal_service.by_id(session, ctx, model_id, viewer, caller, version)
