"""Endpoints for other services (not routed by the gateway; internal token required).

`/internal/models/...` is the one access check the inference, conversation and feed services
use: it answers 404 exactly when the public API would, forwarded identity included.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.catalog import repository
from services.models_hub.catalog.access import access_level
from services.models_hub.catalog.service import ModelNotFound
from services.models_hub.deps import HubContext, HubDep
from services.models_hub.internal.schemas import ModelAccess, RemoteEndpoint, ServableVersion
from services.models_hub.models import Model, ModelVersion, Provider
from shared.auth.identity import InternalCaller, OptionalUser
from shared.db import SessionDep

router = APIRouter(
    prefix="/internal/models", dependencies=[InternalCaller], include_in_schema=False
)


async def _access(
    session: AsyncSession, ctx: HubContext, model: Model | None, viewer: OptionalUser
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
                if provider.api_key_encrypted
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
            files=version.files,
            details=version.details,
        )
        if version is not None and version.status == "ready"
        else None,
        remote=remote,
    )


@router.get("/by-ref/{owner}/{slug}", response_model=ModelAccess)
async def by_ref(
    owner: str, slug: str, session: SessionDep, viewer: OptionalUser, ctx: HubDep
) -> ModelAccess:
    return await _access(session, ctx, await repository.get_by_ref(session, owner, slug), viewer)


@router.get("/{model_id}", response_model=ModelAccess)
async def by_id(
    model_id: uuid.UUID, session: SessionDep, viewer: OptionalUser, ctx: HubDep
) -> ModelAccess:
    return await _access(session, ctx, await repository.get_model(session, model_id), viewer)
