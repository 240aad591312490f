"""Perplexity of a held-out text, in the inference service's process.

The OpenAI-compatible API returns no log-probabilities, so perplexity cannot be measured from
outside the service: it needs the model's per-token log-likelihoods. The running `Engine`
owns its model on its own batch thread and offers no scoring call (and the engine is being
reshaped for chunked prefill as this lands), so scoring does not share its weights: it loads a
scoring copy of the version from the registry's download cache (the same checked files), in a
thread, one at a time per process, on the service's device, and drops it when done. The copy
counts against INFERENCE_MEMORY_BUDGET_BYTES only in that it is refused when the model alone
exceeds it. An engine-side `score(ids)` run between batch steps would avoid the second copy;
it belongs in the engine once that work settles.

The text is cut into windows of INFERENCE_EVALUATION_PERPLEXITY_WINDOW tokens (at most the
model's context); each window is one forward pass, and every token after a window's first is
scored: perplexity = exp(total negative log-likelihood / tokens scored).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path

from services.inference.deps import InferenceContext
from services.inference.engine.registry import ModelFile, parse_dtype
from services.inference.models import UsageSource
from shared.auth.identity import Identity
from shared.errors import Conflict, UnprocessableEntity
from shared.model_files import estimate_parameter_bytes

_ONE_AT_A_TIME = asyncio.Semaphore(1)


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


def _score(
    directory: Path, text: str, window: int, device: str, dtype_name: str | None
) -> tuple[float, int, int]:
    """(sum of negative log-likelihoods, tokens scored, windows) of `text` (blocking)."""
    import torch

    from services.inference.engine.prompts import text_prompt_ids
    from shared.model_loading import load_causal_lm

    model, tokenizer = load_causal_lm(
        directory, device=device, dtype=parse_dtype(dtype_name, device)
    )
    try:
        ids = text_prompt_ids(tokenizer, text)
        context = getattr(model.config, "max_position_embeddings", None) or window
        size = max(2, min(window, int(context)))
        total, scored, windows = 0.0, 0, 0
        with torch.inference_mode():
            for start in range(0, len(ids), size):
                chunk = ids[start : start + size]
                if len(chunk) < 2:
                    continue
                tensor = torch.tensor([chunk], dtype=torch.long, device=model.device)
                logits = model(input_ids=tensor).logits[0, :-1].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                picked = logprobs.gather(1, tensor[0, 1:].unsqueeze(1))
                total -= float(picked.sum())
                scored += len(chunk) - 1
                windows += 1
        return total, scored, windows
    finally:
        del model


async def perplexity(
    ctx: InferenceContext, caller: Identity, model_ref: str, text: str
) -> PerplexityResult:
    """Perplexity of `text` under the model's active version, if the caller may use it."""
    model = await ctx.models.access(model_ref, caller)
    if model.source == UsageSource.REMOTE:
        raise PerplexityUnavailable(
            f"{model.ref} is served by an external provider, which gives no token "
            "log-likelihoods; perplexity needs weights hosted here."
        )
    version = model.active_version
    if version is None:
        raise PerplexityUnavailable(f"{model.ref} has no ready version to score the text with.")
    files = [ModelFile.of(f) for f in version.files]
    directory = await ctx.registry.download(version.storage_prefix, files)
    settings = ctx.settings
    itemsize = parse_dtype(settings.dtype, settings.device).itemsize
    estimate = await asyncio.to_thread(estimate_parameter_bytes, directory, itemsize)
    if estimate > settings.memory_budget_bytes:
        raise PerplexityUnavailable(
            f"{model.ref} needs about {estimate} bytes, more than this server's model memory "
            "budget; perplexity cannot be computed here."
        )
    async with _ONE_AT_A_TIME:
        total, tokens, windows = await asyncio.to_thread(
            _score,
            directory,
            text,
            settings.evaluation_perplexity_window,
            settings.device,
            settings.dtype,
        )
    if tokens == 0:
        raise HeldoutTooShort("The held-out text is too short: it needs at least two tokens.")
    mean_nll = total / tokens
    return PerplexityResult(
        perplexity=math.exp(min(mean_nll, 700.0)),  # finite: JSONB holds no Infinity
        mean_nll=mean_nll,
        tokens=tokens,
        windows=windows,
    )
