"""Next-token choice for a whole batch, each row with its own parameters.

Order as in transformers: repetition penalty (greedy rows too), then for sampled rows temperature,
top-k, top-p, and a draw. The draw is inverse-CDF sampling over the filtered distribution with one
uniform number per row taken from that request's own `torch.Generator`, so everything except those
B scalar draws is vectorized over the batch, and a seeded request's draws depend on nothing but its
seed. `top_k == 1` (and temperature 0) is exactly `argmax`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from services.inference.engine.params import SamplingParams

__all__ = ["SamplingRow", "sample"]


class SamplingRow(Protocol):
    params: SamplingParams
    generator: torch.Generator | None
    #: Tokens seen so far (prompt and output), [V] bool; set for rows with a repetition penalty.
    presence: torch.Tensor | None


def _apply_repetition_penalty(logits: torch.Tensor, rows: Sequence[SamplingRow]) -> None:
    index = [i for i, row in enumerate(rows) if row.params.repetition_penalty != 1.0]
    if not index:
        return
    presence = []
    for i in index:
        seen = rows[i].presence
        assert seen is not None, "rows with a repetition penalty carry their presence mask"
        presence.append(seen)
    device = logits.device
    idx = torch.tensor(index, device=device)
    penalty = torch.tensor(
        [rows[i].params.repetition_penalty for i in index], dtype=logits.dtype, device=device
    )[:, None]
    sub = logits.index_select(0, idx)
    penalized = torch.where(sub < 0, sub * penalty, sub / penalty)
    seen_mask = torch.stack(presence).to(device)
    logits.index_copy_(0, idx, torch.where(seen_mask, penalized, sub))


def _draw(rows: Sequence[SamplingRow], device: torch.device) -> torch.Tensor:
    values = []
    for row in rows:
        assert row.generator is not None, "sampled rows carry a generator"
        values.append(torch.rand((), generator=row.generator))
    return torch.stack(values).to(device)


def _sample_rows(logits: torch.Tensor, rows: Sequence[SamplingRow]) -> torch.Tensor:
    """Sample one token for each row of `logits` [n, V] (all rows sampled, temperature > 0)."""
    device = logits.device
    vocab = logits.shape[-1]
    temperature = torch.tensor(
        [row.params.temperature for row in rows], dtype=logits.dtype, device=device
    )
    logits = logits / temperature[:, None]
    top_k = [row.params.top_k if 0 < row.params.top_k < vocab else 0 for row in rows]
    top_p = [row.params.top_p for row in rows]
    uniform = _draw(rows, device)
    if not any(top_k) and all(p >= 1.0 for p in top_p):
        # Plain temperature sampling: no sort needed.
        probs = torch.softmax(logits, dim=-1)
        cdf = probs.cumsum(dim=-1)
        choice = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True)
        return choice.clamp_(max=vocab - 1).squeeze(1)

    if all(top_k) and all(p >= 1.0 for p in top_p):
        width = max(top_k)
        values, order = logits.topk(width, dim=-1, sorted=True)
    else:
        values, order = logits.sort(dim=-1, descending=True, stable=True)
        width = vocab
    ranks = torch.arange(width, device=device)
    limits = torch.tensor([k if k else width for k in top_k], device=device)
    values = values.masked_fill(ranks[None, :] >= limits[:, None], float("-inf"))
    probs = torch.softmax(values, dim=-1)
    if any(p < 1.0 for p in top_p):
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        top_p_t = torch.tensor(top_p, dtype=probs.dtype, device=device)
        before = probs.cumsum(dim=-1) - probs
        drop = before >= top_p_t[:, None]
        drop[:, 0] = False
        probs = probs.masked_fill(drop, 0.0)
    cdf = probs.cumsum(dim=-1)
    choice = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True)
    choice.clamp_(max=width - 1)
    return order.gather(1, choice).squeeze(1)


def sample(logits: torch.Tensor, rows: Sequence[SamplingRow]) -> list[int]:
    """One token id per row of `logits` [B, V]."""
    logits = logits.float()
    _apply_repetition_penalty(logits, rows)
    tokens = logits.argmax(dim=-1)
    sampled = [i for i, row in enumerate(rows) if not row.params.greedy and row.params.top_k != 1]
    if sampled:
        idx = torch.tensor(sampled, device=logits.device)
        chosen = _sample_rows(logits.index_select(0, idx), [rows[i] for i in sampled])
        tokens.index_copy_(0, idx, chosen)
    return [int(t) for t in tokens.tolist()]
