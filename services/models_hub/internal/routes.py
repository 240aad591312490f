"""Endpoints for other services, each answering only the services that need it.

`/internal/models/...` is the one access check the inference, conversation and feed services
use: it answers 404 exactly when the public API would, forwarded identity included. A remote
model's decrypted provider key leaves the hub only for the inference service, which calls
the provider; every other caller learns the endpoint without its key.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.catalog import repository
from services.models_hub.catalog.access import access_level
from services.models_hub.catalog.service import ModelNotFound
from services.models_hub.deps import HubContext, HubDep
from services.models_hub.models import Model, ModelAccessGrant, ModelVersion, Provider
from shared.auth.identity import OptionalUser
from shared.auth.service_credentials import ServiceName, require_service
from shared.db import SessionDep
from shared.errors import Unauthorized
from shared.models_client import ModelAccess, RemoteEndpoint, ServableVersion, UsableModel

router = APIRouter(prefix="/internal/models", include_in_schema=False)
Caller = Annotated[ServiceName, Depends(require_service(ServiceName.INFERENCE, ServiceName.FEED))]


async def _access(
    session: AsyncSession,
    ctx: HubContext,
    model: Model | None,
    viewer: OptionalUser,
    caller: ServiceName,
) -> ModelAccess:
    if model is None:
        raise ModelNotFound("No such model.")
    level = access_level(model, viewer, await repository.get_grant(session, model.id, viewer))
    if level == "none":
        raise ModelNotFound("No such model.")
    version = (
        await session.get(ModelVersion, model.active_version_id)
        if model.active_version_id
        else None
    )
    remote = None
    if model.source == "remote" and model.provider_id is not None:
        provider = await session.get(Provider, model.provider_id)
        if provider is not None:
            remote = RemoteEndpoint(
                provider_id=provider.id,
                base_url=provider.base_url,
                api_key=ctx.secrets.decrypt(provider.api_key_encrypted)
                if provider.api_key_encrypted and caller == ServiceName.INFERENCE
                else None,
                remote_model=model.remote_model or "",
            )
    return ModelAccess(
        id=model.id,
        ref=f"{model.owner_username}/{model.slug}",
        owner_id=model.owner_id,
        visibility=model.visibility,
        source=model.source,
        status=model.status,
        access=level,
        default_params=model.default_params,
        system_prompt=model.system_prompt,
        active_version=ServableVersion(
            id=version.id,
            number=version.number,
            storage_prefix=version.servable_prefix or "",
            files=version.servable_files,
            details=version.details,
        )
        if version is not None and version.status == "ready"
        else None,
        remote=remote,
        daily_token_cap=model.daily_token_cap,
        user_daily_token_cap=model.user_daily_token_cap,
    )


@router.get("", response_model=list[UsableModel])
async def usable(_: Caller, session: SessionDep, viewer: OptionalUser) -> list[UsableModel]:
    """Ready models the caller may use and should see listed (for GET /v1/models): public
    ones, their own, and private ones granted to them."""
    if viewer is None:
        raise Unauthorized("A caller identity is required.")
    listed = repository.list_query(
        viewer, q=None, owner=None, tag=None, status="ready", source=None
    )
    granted = select(Model).where(
        Model.status == "ready",
        Model.id.in_(
            select(ModelAccessGrant.model_id).where(ModelAccessGrant.user_id == viewer.user_id)
        ),
    )
    models = {m.id: m for m in await session.scalars(listed)}
    models.update({m.id: m for m in await session.scalars(granted)})
    return [
        UsableModel(
            id=m.id,
            ref=f"{m.owner_username}/{m.slug}",
            owner=m.owner_username,
            source=m.source,
            created_at=m.created_at,
        )
        for m in sorted(models.values(), key=lambda m: m.created_at)
    ]


@router.get("/by-ref/{owner}/{slug}", response_model=ModelAccess)
async def by_ref(
    owner: str, slug: str, caller: Caller, session: SessionDep, viewer: OptionalUser, ctx: HubDep
) -> ModelAccess:
    model = await repository.get_by_ref(session, owner, slug)
    return await _access(session, ctx, model, viewer, caller)


@router.get("/{model_id}", response_model=ModelAccess)
async def by_id(
    model_id: uuid.UUID, caller: Caller, session: SessionDep, viewer: OptionalUser, ctx: HubDep
) -> ModelAccess:
    model = await repository.get_model(session, model_id)
    return await _access(session, ctx, model, viewer, caller)
