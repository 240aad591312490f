"""External OpenAI-compatible providers."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from services.models_hub.catalog.schemas import ModelRead
from services.models_hub.catalog.service import catalog_service
from services.models_hub.deps import HubDep
from services.models_hub.providers.schemas import (
    ConnectionTest,
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
    RemoteModelCreate,
)
from services.models_hub.providers.service import provider_service
from shared.auth.identity import CurrentUser
from shared.db import SessionDep

router = APIRouter(prefix="/api/v1/providers", tags=["providers"])


@router.get("", response_model=list[ProviderRead], summary="Your providers")
async def list_providers(viewer: CurrentUser, session: SessionDep) -> list[ProviderRead]:
    return await provider_service.list(session, viewer)


@router.post(
    "",
    response_model=ProviderRead,
    status_code=status.HTTP_201_CREATED,
    summary="Register an OpenAI-compatible endpoint and the models it serves",
)
async def create_provider(
    body: ProviderCreate, viewer: CurrentUser, session: SessionDep, ctx: HubDep
) -> ProviderRead:
    return await provider_service.create(session, ctx, viewer, body)


@router.get("/{provider_id}", response_model=ProviderRead, summary="A provider")
async def get_provider(
    provider_id: uuid.UUID, viewer: CurrentUser, session: SessionDep
) -> ProviderRead:
    return await provider_service.get(session, provider_id, viewer)


@router.patch("/{provider_id}", response_model=ProviderRead, summary="Change a provider")
async def update_provider(
    provider_id: uuid.UUID,
    body: ProviderUpdate,
    viewer: CurrentUser,
    session: SessionDep,
    ctx: HubDep,
) -> ProviderRead:
    return await provider_service.update(session, ctx, provider_id, viewer, body)


@router.delete(
    "/{provider_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a provider and its models",
)
async def delete_provider(provider_id: uuid.UUID, viewer: CurrentUser, session: SessionDep) -> None:
    await provider_service.delete(session, provider_id, viewer)


@router.post(
    "/{provider_id}/models",
    response_model=ModelRead,
    status_code=status.HTTP_201_CREATED,
    summary="Add a model the provider serves",
)
async def add_model(
    provider_id: uuid.UUID,
    body: RemoteModelCreate,
    viewer: CurrentUser,
    session: SessionDep,
    ctx: HubDep,
) -> ModelRead:
    model = await provider_service.add_model(session, ctx, viewer, provider_id, body)
    return await catalog_service.read(session, model, viewer)


@router.post(
    "/{provider_id}/test",
    response_model=ConnectionTest,
    summary="Test the connection: the provider's models, or its error",
)
async def test_connection(
    provider_id: uuid.UUID, viewer: CurrentUser, session: SessionDep, ctx: HubDep
) -> ConnectionTest:
    return await provider_service.test_connection(session, ctx, provider_id, viewer)
