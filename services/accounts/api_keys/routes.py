"""Your API keys."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from services.accounts.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from services.accounts.api_keys.service import api_key_service
from services.accounts.deps import ContextDep
from shared.auth.identity import CurrentUser, client_ip
from shared.db import SessionDep

router = APIRouter(prefix="/api/v1/users/me/api-keys", tags=["api keys"])


@router.get("", response_model=list[ApiKeyRead], summary="Your API keys (secrets never shown)")
async def list_keys(user: CurrentUser, session: SessionDep) -> list[ApiKeyRead]:
    return await api_key_service.list_keys(session, user.user_id)


@router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key; the secret is in this response only",
)
async def create_key(
    body: ApiKeyCreate, request: Request, user: CurrentUser, session: SessionDep, ctx: ContextDep
) -> ApiKeyCreated:
    return await api_key_service.create(session, ctx, user, body, client_ip(request))


@router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key at once"
)
async def revoke_key(
    key_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep, ctx: ContextDep
) -> None:
    await api_key_service.revoke(session, ctx, user, key_id, client_ip(request))
