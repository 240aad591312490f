"""Models: list and search, create, read, change, delete; likes; access grants."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, Query, status

from services.models_hub.catalog.schemas import (
    SLUG_PATTERN,
    USERNAME_PATTERN,
    GrantCreate,
    GrantRead,
    LikeState,
    ModelCreate,
    ModelRead,
    ModelSort,
    ModelUpdate,
)
from services.models_hub.catalog.service import catalog_service
from services.models_hub.deps import HubDep
from services.models_hub.models import ModelSource, ModelStatus
from shared.auth.identity import CurrentUser, OptionalUser
from shared.db import SessionDep
from shared.fields import Text
from shared.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/api/v1/models", tags=["models"])


@router.get("", response_model=Page[ModelRead], summary="List and search models")
async def list_models(
    session: SessionDep,
    viewer: OptionalUser,
    q: Text | None = Query(
        default=None, max_length=100, description="Text in name, description or tags."
    ),
    owner: Text | None = Query(default=None, max_length=32, description="Owner's username."),
    tag: Text | None = Query(default=None, max_length=32),
    status: ModelStatus | None = None,
    source: ModelSource | None = None,
    sort: ModelSort = ModelSort.RECENT,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> Page[ModelRead]:
    return await catalog_service.page(
        session,
        viewer,
        q=q,
        owner=owner,
        tag=tag,
        status=status,
        source=source,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "",
    response_model=ModelRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a model (model developers)",
)
async def create_model(
    body: ModelCreate, viewer: CurrentUser, session: SessionDep, ctx: HubDep
) -> ModelRead:
    model = await catalog_service.create(session, ctx, viewer, body)
    return await catalog_service.read(session, model, viewer)


@router.get(
    "/by-ref/{owner}/{slug}", response_model=ModelRead, summary="A model by `<owner>/<slug>`"
)
async def get_by_ref(
    session: SessionDep,
    viewer: OptionalUser,
    owner: str = Path(pattern=USERNAME_PATTERN, description="The owner's username."),
    slug: str = Path(pattern=SLUG_PATTERN),
) -> ModelRead:
    model = await catalog_service.visible_by_ref(session, owner, slug, viewer)
    return await catalog_service.read(session, model, viewer)


@router.get("/{model_id}", response_model=ModelRead, summary="A model")
async def get_model(model_id: uuid.UUID, session: SessionDep, viewer: OptionalUser) -> ModelRead:
    model = await catalog_service.visible(session, model_id, viewer)
    return await catalog_service.read(session, model, viewer)


@router.patch("/{model_id}", response_model=ModelRead, summary="Change a model")
async def update_model(
    model_id: uuid.UUID, body: ModelUpdate, viewer: CurrentUser, session: SessionDep
) -> ModelRead:
    model = await catalog_service.update(session, model_id, viewer, body)
    return await catalog_service.read(session, model, viewer)


@router.delete(
    "/{model_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a model and its files"
)
async def delete_model(
    model_id: uuid.UUID, viewer: CurrentUser, session: SessionDep, ctx: HubDep
) -> None:
    await catalog_service.delete(session, ctx, model_id, viewer)


@router.post("/{model_id}/like", response_model=LikeState, summary="Like a model")
async def like(model_id: uuid.UUID, viewer: CurrentUser, session: SessionDep) -> LikeState:
    return await catalog_service.set_like(session, model_id, viewer, like=True)


@router.delete("/{model_id}/like", response_model=LikeState, summary="Take a like back")
async def unlike(model_id: uuid.UUID, viewer: CurrentUser, session: SessionDep) -> LikeState:
    return await catalog_service.set_like(session, model_id, viewer, like=False)


@router.get(
    "/{model_id}/grants",
    response_model=list[GrantRead],
    summary="Who else may use or manage a model",
)
async def list_grants(
    model_id: uuid.UUID, viewer: CurrentUser, session: SessionDep
) -> list[GrantRead]:
    return await catalog_service.grants(session, model_id, viewer)


@router.post(
    "/{model_id}/grants",
    response_model=GrantRead,
    status_code=status.HTTP_201_CREATED,
    summary="Let a user use (or manage) a model",
)
async def add_grant(
    model_id: uuid.UUID, body: GrantCreate, viewer: CurrentUser, session: SessionDep, ctx: HubDep
) -> GrantRead:
    return await catalog_service.grant(session, ctx, model_id, viewer, body)


@router.delete(
    "/{model_id}/grants/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Withdraw a user's access",
)
async def remove_grant(
    model_id: uuid.UUID,
    viewer: CurrentUser,
    session: SessionDep,
    username: str = Path(pattern=USERNAME_PATTERN),
) -> None:
    await catalog_service.revoke_grant(session, model_id, viewer, username)
