"""Keys and values of recent prompts, so a prompt that starts like one of them prefills only
the rest.

Multi-turn conversations send their whole history every turn: turn 6's prompt is turn 5's
prompt, its answer and the new question. After a prompt is prefilled, its keys/values up to the
last whole block (`block` tokens) are copied here, and each of its block boundaries is indexed
by a hash chained over the blocks before it, so finding the longest cached prefix of a new
prompt is one dictionary lookup per block. Entries are kept least recently used first and
evicted past `max_bytes`; the tokens are compared before a hit is used, so a hash collision is
a miss, never a wrong cache.

Called on the engine's thread only (no locking).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["CachedPrefix", "PrefixCache"]

BLOCK = 16


@dataclass(frozen=True)
class CachedPrefix:
    """The first `length` tokens of a cached prompt: per layer, keys and values [H, n, D] (use
    `[:, :length]`)."""

    tokens: tuple[int, ...]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int


@dataclass
class _Entry:
    tokens: tuple[int, ...]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    hashes: dict[int, int]  # chained hash -> tokens up to that block
    nbytes: int


class PrefixCache:
    def __init__(self, max_bytes: int, *, block: int = BLOCK) -> None:
        self.max_bytes = max_bytes
        self.block = block
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # by id, oldest first
        self._index: dict[int, tuple[int, int]] = {}  # chained hash -> (entry id, tokens)
        self._next_id = 0
        self.nbytes = 0
        self.hits = 0
        self.hit_tokens = 0

    def _hashes(self, tokens: Sequence[int], limit: int) -> list[int]:
        """The chained hash at each whole block of `tokens[:limit]`."""
        hashes, running = [], 0
        for end in range(self.block, limit + 1, self.block):
            running = hash((running, tuple(tokens[end - self.block : end])))
            hashes.append(running)
        return hashes

    def _longest(self, tokens: Sequence[int], limit: int) -> tuple[_Entry, int] | None:
        found: tuple[int, int] | None = None
        for running in self._hashes(tokens, limit):
            at = self._index.get(running)
            if at is None:
                break
            found = at
        if found is None:
            return None
        entry_id, length = found
        entry = self._entries[entry_id]
        if entry.tokens[:length] != tuple(tokens[:length]):
            return None  # a hash collision
        self._entries.move_to_end(entry_id)
        return entry, length

    def lookup(self, prompt: Sequence[int]) -> CachedPrefix | None:
        """The longest cached prefix of `prompt` that leaves at least one token to run (the
        next token's logits come from the last one)."""
        if self.max_bytes <= 0:
            return None
        found = self._longest(prompt, len(prompt) - 1)
        if found is None:
            return None
        entry, length = found
        self.hits += 1
        self.hit_tokens += length
        return CachedPrefix(entry.tokens, entry.keys, entry.values, length)

    def covered(self, prompt: Sequence[int]) -> int:
        """How many tokens of `prompt` a lookup would find cached (no hit counted)."""
        if self.max_bytes <= 0 or not self._index:
            return 0
        found = self._longest(prompt, len(prompt) - 1)
        return 0 if found is None else found[1]

    def holds(self, prompt: Sequence[int]) -> bool:
        """Whether storing `prompt` would keep nothing new: no cache, no whole block, or its
        whole blocks are cached already (so callers need not gather its keys/values)."""
        length = len(prompt) // self.block * self.block
        if self.max_bytes <= 0 or length == 0:
            return True
        known = self._longest(prompt, length)
        return known is not None and known[1] == length

    def store(
        self, prompt: Sequence[int], keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]
    ) -> None:
        """Keep the prompt's keys/values (per layer [H, len(prompt), D], views are fine: the
        whole blocks are copied) unless its whole blocks are cached already."""
        if self.holds(prompt):
            return
        length = len(prompt) // self.block * self.block
        kept_keys = [k[:, :length].clone() for k in keys]
        kept_values = [v[:, :length].clone() for v in values]
        nbytes = sum(t.numel() * t.element_size() for t in [*kept_keys, *kept_values])
        if nbytes > self.max_bytes:
            return
        entry_id, self._next_id = self._next_id, self._next_id + 1
        hashes = {
            running: blocks * self.block
            for blocks, running in enumerate(self._hashes(prompt, length), start=1)
        }
        self._entries[entry_id] = _Entry(
            tuple(prompt[:length]), kept_keys, kept_values, hashes, nbytes
        )
        for running, tokens in hashes.items():
            self._index[running] = (entry_id, tokens)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            self._evict()

    def _evict(self) -> None:
        entry_id, entry = self._entries.popitem(last=False)
        self.nbytes -= entry.nbytes
        for running in entry.hashes:
            at = self._index.get(running)
            if at is None or at[0] != entry_id:
                continue
            del self._index[running]
            # Blocks it shared with an older prompt lead to that one again.
            for other_id in reversed(self._entries):
                tokens = self._entries[other_id].hashes.get(running)
                if tokens is not None:
                    self._index[running] = (other_id, tokens)
                    break

    def clear(self) -> None:
        self._entries.clear()
        self._index.clear()
        self.nbytes = 0

    def stats(self) -> dict[str, int]:
        return {
            "prefix_cache_entries": len(self._entries),
            "prefix_cache_bytes": self.nbytes,
            "prefix_cache_hits": self.hits,
            "prefix_cache_hit_tokens": self.hit_tokens,
        }
