"""Counting an attachment's tokens, and cutting its text to a number of them.

For a model this service runs, its own tokenizer counts (from the engine registry, loading the
model if it is not loaded: the conversation will need it anyway). For a model served by an
external provider we have no tokenizer, so the count is an estimate of 4 characters a token,
the usual figure for English text with BPE vocabularies; the attachment records which
(`token_counter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from services.inference.models import TokenCounter

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Fitted:
    text: str
    tokens: int
    extracted_tokens: int
    truncated: bool


def _fit_estimate(text: str, limit: int) -> Fitted:
    total = math.ceil(len(text) / CHARS_PER_TOKEN)
    if total <= limit:
        return Fitted(text, total, total, False)
    kept = text[: limit * CHARS_PER_TOKEN]
    return Fitted(kept, math.ceil(len(kept) / CHARS_PER_TOKEN), total, True)


def _fit_tokenizer(tokenizer: PreTrainedTokenizerBase, text: str, limit: int) -> Fitted:
    kwargs: dict[str, Any] = {"add_special_tokens": False, "split_special_tokens": True}
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(text, return_offsets_mapping=True, **kwargs)
        ids: list[int] = encoded["input_ids"]
        if len(ids) <= limit:
            return Fitted(text, len(ids), len(ids), False)
        # Cut at the end of the last kept token's characters: the text stays the original's.
        end = int(encoded["offset_mapping"][limit - 1][1])
        return Fitted(text[:end], limit, len(ids), True)
    ids = tokenizer(text, **kwargs)["input_ids"]
    if len(ids) <= limit:
        return Fitted(text, len(ids), len(ids), False)
    kept = str(tokenizer.decode(ids[:limit], skip_special_tokens=True))
    return Fitted(kept, limit, len(ids), True)


async def fit(
    text: str, limit: int, tokenizer: PreTrainedTokenizerBase | None
) -> tuple[Fitted, TokenCounter]:
    """`text` cut to `limit` tokens, counted by `tokenizer` (None: the estimate)."""
    if tokenizer is None:
        return _fit_estimate(text, limit), TokenCounter.ESTIMATE
    fitted = await anyio.to_thread.run_sync(_fit_tokenizer, tokenizer, text, limit)
    return fitted, TokenCounter.MODEL
