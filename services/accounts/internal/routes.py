"""Endpoints for other services only: each answers the services that need it and, to anyone
else (the gateway's forwarded user requests included), does not exist."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from services.accounts.api_keys.schemas import ResolveApiKey, ResolvedApiKey
from services.accounts.api_keys.service import api_key_service
from services.accounts.deps import ContextDep
from services.accounts.users.schemas import InternalUser
from services.accounts.users.service import user_service
from shared.auth.service_credentials import ServiceName, require_service
from shared.db import SessionDep

router = APIRouter(prefix="/internal", include_in_schema=False)
# The services that look up users by id or name (grants, posts, conversations).
_USER_READERS = require_service(ServiceName.MODELS_HUB, ServiceName.INFERENCE, ServiceName.FEED)


@router.post(
    "/api-keys/resolve",
    response_model=ResolvedApiKey,
    dependencies=[Depends(require_service(ServiceName.GATEWAY))],
)
async def resolve_api_key(
    body: ResolveApiKey, session: SessionDep, ctx: ContextDep
) -> ResolvedApiKey:
    return await api_key_service.resolve(session, ctx, body.key_hash)


@router.get(
    "/users/by-name/{username}", response_model=InternalUser, dependencies=[Depends(_USER_READERS)]
)
async def user_by_name(username: str, session: SessionDep) -> InternalUser:
    return await user_service.internal_by_name(session, username)


@router.get("/users/{user_id}", response_model=InternalUser, dependencies=[Depends(_USER_READERS)])
async def user_by_id(user_id: uuid.UUID, session: SessionDep) -> InternalUser:
    return await user_service.internal_by_id(session, user_id)
