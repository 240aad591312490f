"""`/internal/v1/perplexity`: held-out perplexity for the inference worker's evaluation job,
which loads no model itself (see scoring.py). Only the inference service's own credential is
answered, with the person's identity forwarded: the access check is theirs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from services.inference.deps import InferenceDep
from services.inference.evaluations import scoring
from shared.auth.identity import OptionalUser
from shared.auth.service_credentials import ServiceName, require_service
from shared.errors import Unauthorized
from shared.fields import NUL_FREE_PATTERN

router = APIRouter(prefix="/internal/v1", include_in_schema=False)
Caller = Annotated[ServiceName, Depends(require_service(ServiceName.INFERENCE))]


class PerplexityRequest(BaseModel):
    model: str = Field(min_length=3, max_length=100)
    text: str = Field(min_length=1, pattern=NUL_FREE_PATTERN)


class PerplexityRead(BaseModel):
    perplexity: float
    mean_nll: float
    tokens: int
    windows: int


@router.post("/perplexity", response_model=PerplexityRead)
async def perplexity(
    body: PerplexityRequest, _: Caller, viewer: OptionalUser, ctx: InferenceDep
) -> PerplexityRead:
    if viewer is None:
        raise Unauthorized("The person the perplexity is computed for must be forwarded.")
    result = await scoring.perplexity(ctx, viewer, body.model, body.text)
    return PerplexityRead(
        perplexity=result.perplexity,
        mean_nll=result.mean_nll,
        tokens=result.tokens,
        windows=result.windows,
    )
