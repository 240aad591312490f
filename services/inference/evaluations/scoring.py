"""Perplexity of a held-out text, in the inference service's process.

The OpenAI-compatible API returns no log-probabilities, so perplexity cannot be measured from
outside the service: it needs the model's per-token log-likelihoods. The version's engine
scores the text on its own weights (`Engine.score`: one window per batch turn, between decoding
steps), loaded through the registry like any request, so no second copy is ever held.

The text is cut into windows of INFERENCE_EVALUATION_PERPLEXITY_WINDOW tokens (at most the
model's context); each window is one forward pass, and every token after a window's first is
scored: perplexity = exp(total negative log-likelihood / tokens scored).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from services.inference.deps import InferenceContext
from services.inference.models import UsageSource
from services.inference.openai.service import openai_service
from shared.auth.identity import Identity
from shared.errors import Conflict, UnprocessableEntity


class PerplexityUnavailable(Conflict):
    code = "perplexity_unavailable"


class HeldoutTooShort(UnprocessableEntity):
    code = "heldout_text_too_short"


@dataclass(frozen=True, slots=True)
class PerplexityResult:
    perplexity: float
    mean_nll: float
    tokens: int
    windows: int


async def perplexity(
    ctx: InferenceContext, caller: Identity, model_ref: str, text: str
) -> PerplexityResult:
    """Perplexity of `text` under the model's active version (or the `@<n>` one the name asks
    for), if the caller may use it."""
    model = await ctx.models.access(model_ref, caller)
    if model.source == UsageSource.REMOTE:
        raise PerplexityUnavailable(
            f"{model.ref} is served by an external provider, which gives no token "
            "log-likelihoods; perplexity needs weights hosted here."
        )
    if model.active_version is None:
        raise PerplexityUnavailable(f"{model.ref} has no ready version to score the text with.")
    engine = await openai_service.engine_for(ctx, model)
    ids = await asyncio.to_thread(engine.text_prompt, text)  # a long text: off the event loop
    total, tokens, windows = await engine.score(ids, ctx.settings.evaluation_perplexity_window)
    if tokens == 0:
        raise HeldoutTooShort("The held-out text is too short: it needs at least two tokens.")
    mean_nll = total / tokens
    return PerplexityResult(
        perplexity=math.exp(min(mean_nll, 700.0)),  # finite: JSONB holds no Infinity
        mean_nll=mean_nll,
        tokens=tokens,
        windows=windows,
    )
