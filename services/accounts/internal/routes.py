"""Endpoints for other services only (the gateway does not route /internal)."""

from __future__ import annotations

from fastapi import APIRouter

from services.accounts.api_keys.schemas import ResolveApiKey, ResolvedApiKey
from services.accounts.api_keys.service import api_key_service
from services.accounts.deps import ContextDep
from shared.auth.identity import InternalCaller
from shared.db import SessionDep

router = APIRouter(prefix="/internal", dependencies=[InternalCaller], include_in_schema=False)


@router.post("/api-keys/resolve", response_model=ResolvedApiKey)
async def resolve_api_key(
    body: ResolveApiKey, session: SessionDep, ctx: ContextDep
) -> ResolvedApiKey:
    return await api_key_service.resolve(session, ctx, body.key_hash)
