"""The prefix cache's bookkeeping: longest whole-block prefix, collisions, LRU eviction within
its memory, shared blocks surviving the eviction of the prompt that indexed them last."""

from __future__ import annotations

import torch

from services.inference.engine.prefix_cache import PrefixCache

LAYERS, HEADS, DIM = 2, 2, 4


def _kv(tokens: list[int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per layer [H, n, D], each position holding its token id (so slices can be checked)."""
    column = torch.tensor(tokens, dtype=torch.float32)[None, :, None].expand(HEADS, -1, DIM)
    return [column.clone() for _ in range(LAYERS)], [column.clone() + 0.5 for _ in range(LAYERS)]


def _bytes(n: int) -> int:
    return 2 * LAYERS * HEADS * n * DIM * 4


def test_the_longest_whole_block_prefix_is_found_leaving_one_token_to_run() -> None:
    cache = PrefixCache(1 << 20, block=4)
    prompt = list(range(10))  # blocks [0..3] [4..7], the rest not whole
    cache.store(prompt, *_kv(prompt))
    assert cache.stats()["prefix_cache_bytes"] == _bytes(8)
    hit = cache.lookup([*range(10), 99, 98])
    assert hit is not None
    assert hit.length == 8
    assert hit.keys[0][0, :8, 0].tolist() == list(range(8))
    # An exact repeat of 8 tokens: at most 7 may come from the cache, so one block.
    again = cache.lookup(list(range(8)))
    assert again is not None
    assert again.length == 4
    assert cache.lookup([0, 1, 2, 7, 4, 5, 6, 7, 8]) is None  # differs inside the first block
    assert cache.stats()["prefix_cache_hits"] == 2
    assert cache.stats()["prefix_cache_hit_tokens"] == 12


def test_a_hash_collision_is_a_miss(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = PrefixCache(1 << 20, block=4)
    cache.store([1, 2, 3, 4, 5], *_kv([1, 2, 3, 4, 5]))
    # Another prompt whose first block hashes the same (forced): its tokens are compared.
    monkeypatch.setattr(cache, "_hashes", lambda tokens, limit: [hash((0, (1, 2, 3, 4)))])
    assert cache.lookup([9, 9, 9, 9, 9]) is None


def test_least_recently_used_prompts_go_first_within_the_memory() -> None:
    cache = PrefixCache(2 * _bytes(4), block=4)
    a, b, c = [1, 1, 1, 1, 0], [2, 2, 2, 2, 0], [3, 3, 3, 3, 0]
    cache.store(a, *_kv(a))
    cache.store(b, *_kv(b))
    assert cache.lookup(a) is not None  # a is used: b is now the oldest
    cache.store(c, *_kv(c))
    assert cache.stats()["prefix_cache_entries"] == 2
    assert cache.lookup(b) is None
    assert cache.lookup(a) is not None
    assert cache.lookup(c) is not None
    # A prompt larger than the whole cache is not kept.
    big = list(range(40))
    cache.store(big, *_kv(big))
    assert cache.lookup([*big, 0]) is None


def test_blocks_shared_with_an_evicted_prompt_still_lead_to_the_other() -> None:
    cache = PrefixCache(_bytes(8) + _bytes(4), block=4)
    long = [5, 5, 5, 5, 6, 6, 6, 6, 0]
    short = [5, 5, 5, 5, 7]
    cache.store(long, *_kv(long))
    cache.store(short, *_kv(short))  # its block [5 5 5 5] now indexes the short prompt
    assert cache.lookup(long) is not None  # long is the most recent: short goes next
    third = [8, 8, 8, 8, 0]
    cache.store(third, *_kv(third))
    assert cache.stats()["prefix_cache_entries"] == 2
    hit = cache.lookup([*long[:8], 1])
    assert hit is not None
    assert hit.length == 8
