"""KV-cache handling for continuous batching.

`PaddedBackend` (the fast path) keeps every running request in one batch whose KV cache is
left-padded: row i holds its request's keys/values right-aligned, so all rows end at the same cache
position and one decoding step is one forward pass of shape [B, 1]. The attention mask marks the
padding and `position_ids` carry each row's own positions, so a row attends to exactly what it
would attend to alone. Keys/values live in preallocated buffers [row capacity, H, position
capacity, D] written in place (transformers' DynamicCache concatenates, copying the whole cache on
every step); the model sees views of the live part. A request joins by copying its prefill's rows
into free row slots (right-aligned; the whole cache is re-laid out only when rows or positions run
out, or the new prompt is longer than the batch) and leaves by moving the last row into its slot.

`SerialBackend` is the fallback for models whose cache is not plain attention (linear-attention
or shared-KV layers): one transformers cache per request, one forward per request and step.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers.cache_utils import (
    Cache,
    DynamicCache,
    DynamicLayer,
    DynamicSlidingWindowLayer,
)

from services.inference.engine.prefix_cache import CachedPrefix, PrefixCache

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "Backend",
    "DetachedBackend",
    "PaddedBackend",
    "SerialBackend",
    "padded_batching_supported",
]


def padded_batching_supported(model: PreTrainedModel) -> bool:
    """True when every layer of the model's cache is plain (full or sliding-window) attention:
    such caches can be held as full-length left-padded buffers. Sliding-window layers then keep
    the whole history and the model's sliding mask does the windowing."""
    try:
        probe = DynamicCache(config=model.config)
    except Exception:
        return False
    text_config = model.config.get_text_config(decoder=True)
    layers = getattr(text_config, "num_hidden_layers", None)
    return (
        layers is not None
        and len(probe.layers) == layers
        and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in probe.layers)
    )


def _accepts_logits_to_keep(model: PreTrainedModel) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _last_logits(model: PreTrainedModel, use_keep: bool, **inputs: Any) -> torch.Tensor:
    # The KV cache goes in as `cache` (transformers >= 5.24; `past_key_values`, its old name,
    # is removed in 5.40).
    if use_keep:
        inputs["logits_to_keep"] = 1
    out = model(**inputs, use_cache=True, return_dict=True)
    logits: torch.Tensor = out.logits
    return logits[:, -1, :]


def sequence_nll(model: PreTrainedModel, ids: Sequence[int]) -> float:
    """The sum of the negative log-likelihoods of `ids[1:]`, each given the ones before it (one
    forward pass, no KV cache kept)."""
    device = next(model.parameters()).device
    tensor = torch.tensor([list(ids)], dtype=torch.long, device=device)
    logits = model(input_ids=tensor, use_cache=False, return_dict=True).logits[0, :-1].float()
    picked = torch.log_softmax(logits, dim=-1).gather(1, tensor[0, 1:].unsqueeze(1))
    return -float(picked.sum())


# ---- the padded batch ---------------------------------------------------------------------------


class _SlotLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """One layer's cache as transformers sees it: the first `rows` rows and `length` positions of
    preallocated buffers [rows capacity, heads, positions capacity, head dim]. `update` writes the
    new positions in place (no concatenation) and returns views."""

    def __init__(
        self,
        kbuf: torch.Tensor | None,
        vbuf: torch.Tensor | None,
        rows: int,
        length: int,
        capacity: int = 0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.kbuf, self.vbuf = kbuf, vbuf
        self.rows, self.length, self.capacity = rows, length, capacity
        if kbuf is not None:
            self.dtype, self.device = kbuf.dtype, kbuf.device
            self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """First write of a prefill: buffers sized for the batch, plus decoding headroom."""
        self.dtype, self.device = key_states.dtype, key_states.device
        capacity = max(self.capacity, self.length + key_states.shape[2])
        rows, heads, _, dim = key_states.shape
        self.kbuf = key_states.new_zeros((rows, heads, capacity, dim))
        self.vbuf = value_states.new_zeros(
            (rows, value_states.shape[1], capacity, value_states.shape[3])
        )
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        kbuf, vbuf = self.kbuf, self.vbuf
        assert kbuf is not None
        assert vbuf is not None
        end = self.length + key_states.shape[2]
        kbuf[: self.rows, :, self.length : end] = key_states
        vbuf[: self.rows, :, self.length : end] = value_states
        self.length = end
        keys, values = kbuf[: self.rows, :, :end], vbuf[: self.rows, :, :end]
        self.keys, self.values = keys, values
        return keys, values

    def get_seq_length(self) -> int:
        return self.length


class _SlotCache(DynamicCache):
    """A DynamicCache made of the engine's buffers."""

    def __init__(self, layers: list[_SlotLayer]) -> None:
        Cache.__init__(self, layers=list(layers))


@dataclass
class PaddedBatch:
    """Left-padded rows: per-layer key/value buffers [row capacity, H, position capacity, D], the
    attention mask [row capacity, position capacity] (1 = real token) and each row's next position
    id. Rows 0..rows-1 are live; all of them end at `length`."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor
    positions: torch.Tensor
    rows: int
    length: int

    @property
    def row_capacity(self) -> int:
        return int(self.mask.shape[0])

    @property
    def capacity(self) -> int:
        return int(self.mask.shape[1])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.keys, *self.values])

    def layers(self) -> list[_SlotLayer]:
        return [
            _SlotLayer(k, v, self.rows, self.length)
            for k, v in zip(self.keys, self.values, strict=True)
        ]

    def first_used_column(self) -> int:
        """Columns before this one are padding in every live row."""
        used = self.mask[: self.rows, : self.length].any(dim=0).nonzero()
        return int(used[0]) if used.numel() else self.length

    def relayout(self, row_capacity: int, length: int, capacity: int) -> None:
        """Move into new buffers with these capacities, live rows right-aligned to `length` (at
        least their length without leading all-padding columns). Layer by layer, so only one
        layer's buffers exist twice at a time."""
        start = self.first_used_column()
        used = self.length - start
        assert used <= length <= capacity
        assert self.rows <= row_capacity
        rows, offset = self.rows, length - used
        for buffers in (self.keys, self.values):
            for index, old in enumerate(buffers):
                new = old.new_zeros((row_capacity, old.shape[1], capacity, old.shape[3]))
                new[:rows, :, offset:length] = old[:rows, :, start : self.length]
                buffers[index] = new
                del old
        mask = self.mask.new_zeros((row_capacity, capacity))
        mask[:rows, offset:length] = self.mask[:rows, start : self.length]
        positions = self.positions.new_zeros((row_capacity,))
        positions[:rows] = self.positions[:rows]
        self.mask, self.positions, self.length = mask, positions, length

    def move_row(self, source: int, target: int) -> None:
        end = self.length
        for buffers in (self.keys, self.values):
            for buffer in buffers:
                buffer[target, :, :end] = buffer[source, :, :end]
        self.mask[target, :end] = self.mask[source, :end]
        self.positions[target] = self.positions[source]


@dataclass
class PartialPrefill:
    """A prompt being prefilled a chunk at a time: its ids [1, n] and the cache written so far."""

    ids: torch.Tensor
    layers: list[_SlotLayer]
    done: int = 0


class Backend:
    """What the scheduler needs of a KV strategy. Rows are the running requests, in batch order."""

    #: Whether `start_prefill`/`prefill_chunk` work (a long prompt prefilled between steps).
    chunked_prefill = False

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[object, torch.Tensor]:
        """Run the prompts; return a chunk for `merge` and the next-token logits [n, V]."""
        raise NotImplementedError

    def start_prefill(self, prompt: Sequence[int]) -> object:
        """A prompt to prefill in chunks (`prefill_chunk`), between decoding steps."""
        raise NotImplementedError

    def prefill_chunk(self, partial: object, count: int) -> tuple[object, torch.Tensor] | None:
        """Run the next `count` tokens of a partial prefill; after its last, what `prefill`
        returns for that one prompt (a chunk for `merge`, the next-token logits [1, V])."""
        raise NotImplementedError

    def merge(
        self, chunks: Sequence[object], keep: Sequence[Sequence[int]]
    ) -> list[tuple[int, int]]:
        """Append the rows `keep[i]` of chunk i to the batch; return (chunk, row) of each new
        batch row, in batch order."""
        raise NotImplementedError

    def decode(self, tokens: Sequence[int]) -> torch.Tensor:
        """Feed one token per row; return the next-token logits [rows, V]."""
        raise NotImplementedError

    def remove(self, rows: Sequence[int]) -> list[int]:
        """Drop `rows`; return the new batch order as old row indices."""
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def kv_bytes(self) -> int:
        raise NotImplementedError

    def score(self, ids: Sequence[int]) -> float:
        """`sequence_nll` of `ids` with this backend's model, leaving the batch as it is."""
        raise NotImplementedError

    def cached_prefix(self, prompt: Sequence[int]) -> int:
        """Tokens at the start of `prompt` whose keys/values are cached (not run again)."""
        return 0

    def cache_stats(self) -> dict[str, int]:
        return {}

    def remember_row(self, row: int, tokens: Sequence[int]) -> None:
        """Keep the keys/values of a finishing row, whose cache holds `tokens`, for prompts that
        start with them (a conversation's next turn starts with this prompt and its answer)."""


class DetachedBackend(Backend):
    """What a closed engine keeps: nothing."""

    def clear(self) -> None:
        pass

    def kv_bytes(self) -> int:
        return 0


class PaddedBackend(Backend):
    """One left-padded batch for all running requests (see the module docstring).

    Joining copies only the new rows into free row slots (the buffers are reallocated, and
    leading all-padding columns dropped, only when rows or positions run out or a new prompt is
    longer than the batch); leaving moves the last row into the freed slot. Position capacity
    grows geometrically, so copies of the whole cache are rare."""

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        headroom: int,
        pad_token_id: int,
        max_rows: int,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        self._model = model
        self._prefixes = prefix_cache
        self._headroom = headroom
        self._pad = pad_token_id
        self._max_rows = max_rows
        self._device = next(model.parameters()).device
        text_config = model.config.get_text_config(decoder=True)
        self._num_layers = int(text_config.num_hidden_layers)
        self._use_keep = _accepts_logits_to_keep(model)
        self._batch: PaddedBatch | None = None
        self.reallocations = 0

    def score(self, ids: Sequence[int]) -> float:
        return sequence_nll(self._model, ids)

    def cached_prefix(self, prompt: Sequence[int]) -> int:
        return 0 if self._prefixes is None else self._prefixes.covered(prompt)

    def cache_stats(self) -> dict[str, int]:
        return {} if self._prefixes is None else self._prefixes.stats()

    def remember_row(self, row: int, tokens: Sequence[int]) -> None:
        if self._batch is not None:
            self._remember(tokens, self._batch, row)

    def _resumed(self, prompt: Sequence[int]) -> PartialPrefill | None:
        """A prefill of `prompt` that starts after its longest cached prefix, if any."""
        hit = self._lookup(prompt)
        if hit is None:
            return None
        layers = self._prefix_layers([hit], hit.length, self._room(len(prompt)))
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=self._device)
        return PartialPrefill(ids, layers, done=hit.length)

    def _remember(self, tokens: Sequence[int], batch: PaddedBatch, row: int) -> None:
        """Cache the keys/values of `tokens`, which `row` of `batch` holds: its real columns,
        in order (a prefill from a cached prefix may leave padding between them)."""
        if self._prefixes is None or self._prefixes.holds(tokens):
            return  # before gathering the row: a repeated prompt costs no copy
        columns = batch.mask[row, : batch.length].nonzero().flatten()
        if columns.numel() != len(tokens):
            return  # never keep keys under tokens they do not belong to
        first, last = int(columns[0]), int(columns[-1])

        def row_of(buffer: torch.Tensor) -> torch.Tensor:
            if last - first + 1 == len(tokens):
                return buffer[row, :, first : last + 1]  # a view: the cache copies what it keeps
            return buffer[row].index_select(1, columns)

        self._prefixes.store(
            tokens, [row_of(k) for k in batch.keys], [row_of(v) for v in batch.values]
        )

    def _room(self, length: int) -> int:
        return length + max(self._headroom, length // 4)

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[PaddedBatch, torch.Tensor]:
        """One forward pass over the prompts' tokens that are not cached: row r's cached prefix
        (if any) is copied right-aligned before column `width`, and the rest of its prompt
        left-padded after it, so every row ends at the same column. A row whose prefix is
        shorter than `width`, or whose rest is shorter than the longest rest, has padding
        columns in the mask there; the row attends to exactly its own prompt."""
        hits = [self._lookup(prompt) for prompt in prompts]
        cached = [0 if hit is None else hit.length for hit in hits]
        fresh = [len(prompt) - done for prompt, done in zip(prompts, cached, strict=True)]
        rows, width, span = len(prompts), max(cached), max(fresh)
        length = width + span
        input_ids = torch.full((rows, span), self._pad, dtype=torch.long)
        mask = torch.zeros((rows, length), dtype=torch.long)
        position_ids = torch.zeros((rows, span), dtype=torch.long)
        for row, (prompt, done, count) in enumerate(zip(prompts, cached, fresh, strict=True)):
            input_ids[row, span - count :] = torch.tensor(list(prompt[done:]), dtype=torch.long)
            mask[row, width - done : width] = 1
            mask[row, length - count :] = 1
            position_ids[row, span - count :] = torch.arange(done, len(prompt))
        input_ids, mask = input_ids.to(self._device), mask.to(self._device)
        position_ids = position_ids.to(self._device)
        # Sized to become the batch itself when nothing else is running.
        capacity = self._room(length)
        layers = self._prefix_layers(hits, width, capacity)
        logits = _last_logits(
            self._model,
            self._use_keep,
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            cache=_SlotCache(layers),
        )
        keys, values = [], []
        for layer in layers:
            assert layer.kbuf is not None, "every layer of the model wrote its cache"
            assert layer.vbuf is not None
            keys.append(layer.kbuf)
            values.append(layer.vbuf)
        if not bool(mask.all()):
            # Padding positions come from attention rows that may be fully masked: zero them so
            # no stray inf/NaN can reach a real row (0 * NaN is NaN).
            pad = (mask == 0)[:, None, :, None]
            for buffer in [*keys, *values]:
                buffer[:, :, :length].masked_fill_(pad, 0)
        full_mask = mask.new_zeros((rows, keys[0].shape[2]))
        full_mask[:, :length] = mask
        batch = PaddedBatch(keys, values, full_mask, mask.sum(-1), rows, length)
        for row, prompt in enumerate(prompts):
            self._remember(prompt, batch, row)
        return batch, logits

    def _lookup(self, prompt: Sequence[int]) -> CachedPrefix | None:
        return None if self._prefixes is None else self._prefixes.lookup(prompt)

    def _prefix_layers(
        self, hits: Sequence[CachedPrefix | None], width: int, capacity: int
    ) -> list[_SlotLayer]:
        """Per layer, the cache a prefill starts from: each hit's keys/values right-aligned to
        `width` in its row (none: buffers made at the first write)."""
        rows = len(hits)
        found = [(row, hit) for row, hit in enumerate(hits) if hit is not None]
        if not found:
            return [_SlotLayer(None, None, rows, 0, capacity) for _ in range(self._num_layers)]
        sample = found[0][1]
        layers = []
        for index in range(self._num_layers):
            keys, values = sample.keys[index], sample.values[index]
            kbuf = keys.new_zeros((rows, keys.shape[0], capacity, keys.shape[2]))
            vbuf = values.new_zeros((rows, values.shape[0], capacity, values.shape[2]))
            for row, hit in found:
                kbuf[row, :, width - hit.length : width] = hit.keys[index][:, : hit.length]
                vbuf[row, :, width - hit.length : width] = hit.values[index][:, : hit.length]
            layers.append(_SlotLayer(kbuf, vbuf, rows, width, capacity))
        return layers

    chunked_prefill = True

    def start_prefill(self, prompt: Sequence[int]) -> PartialPrefill:
        if (resumed := self._resumed(prompt)) is not None:
            return resumed
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=self._device)
        capacity = self._room(ids.shape[1])
        layers = [_SlotLayer(None, None, 1, 0, capacity) for _ in range(self._num_layers)]
        return PartialPrefill(ids, layers)

    def prefill_chunk(self, partial: object, count: int) -> tuple[PaddedBatch, torch.Tensor] | None:
        assert isinstance(partial, PartialPrefill)
        start = partial.done
        total = int(partial.ids.shape[1])
        end = min(start + count, total)
        # One row, no padding: the cache so far plus this chunk, at their own positions.
        logits = _last_logits(
            self._model,
            self._use_keep,
            input_ids=partial.ids[:, start:end],
            attention_mask=torch.ones((1, end), dtype=torch.long, device=self._device),
            position_ids=torch.arange(start, end, device=self._device)[None],
            cache=_SlotCache(partial.layers),
        )
        partial.done = end
        if end < total:
            return None
        keys, values = [], []
        for layer in partial.layers:
            assert layer.kbuf is not None, "every layer of the model wrote its cache"
            assert layer.vbuf is not None
            keys.append(layer.kbuf)
            values.append(layer.vbuf)
        mask = torch.zeros((1, keys[0].shape[2]), dtype=torch.long, device=self._device)
        mask[:, :total] = 1
        positions = torch.tensor([total], dtype=torch.long, device=self._device)
        batch = PaddedBatch(keys, values, mask, positions, 1, total)
        self._remember(partial.ids[0].tolist(), batch, 0)
        return batch, logits

    def merge(
        self, chunks: Sequence[object], keep: Sequence[Sequence[int]]
    ) -> list[tuple[int, int]]:
        appended: list[tuple[int, int]] = []
        for number, (chunk, rows) in enumerate(zip(chunks, keep, strict=True)):
            assert isinstance(chunk, PaddedBatch)
            if not rows:
                continue
            if self._batch is None:
                # Nothing running: the prefill's buffers become the batch.
                self._batch = chunk
                wanted = set(rows)
                order = self._remove([row for row in range(chunk.rows) if row not in wanted])
                appended.extend((number, row) for row in order)
            else:
                self._append(chunk, rows)
                appended.extend((number, row) for row in rows)
        return appended

    def _append(self, chunk: PaddedBatch, rows: Sequence[int]) -> None:
        batch = self._batch
        assert batch is not None
        count, new = len(rows), chunk.length
        if new > batch.length or batch.rows + count > batch.row_capacity:
            length = max(batch.length - batch.first_used_column(), new)
            row_capacity = min(self._max_rows, max(batch.rows + count, 2 * batch.row_capacity))
            row_capacity = max(row_capacity, batch.rows + count)
            batch.relayout(row_capacity, length, self._room(length))
            self.reallocations += 1
        start, end = batch.rows, batch.rows + count
        length, offset = batch.length, batch.length - new
        index = (
            slice(None)
            if list(rows) == list(range(chunk.rows))
            else torch.tensor(list(rows), dtype=torch.long, device=batch.mask.device)
        )
        for target, source in ((batch.keys, chunk.keys), (batch.values, chunk.values)):
            for buffer, part in zip(target, source, strict=True):
                buffer[start:end, :, :offset] = 0
                buffer[start:end, :, offset:length] = part[index, :, :new]
        batch.mask[start:end, :offset] = 0
        batch.mask[start:end, offset:length] = chunk.mask[index, :new]
        batch.positions[start:end] = chunk.positions[index]
        batch.rows = end

    def decode(self, tokens: Sequence[int]) -> torch.Tensor:
        batch = self._batch
        assert batch is not None
        assert batch.rows == len(tokens)
        if batch.length + 1 > batch.capacity:
            length = batch.length - batch.first_used_column()
            batch.relayout(batch.row_capacity, length, self._room(length + 1))
            self.reallocations += 1
        rows, length = batch.rows, batch.length
        batch.mask[:rows, length] = 1
        ids = torch.tensor(list(tokens), dtype=torch.long, device=self._device)
        logits = _last_logits(
            self._model,
            False,
            input_ids=ids[:, None],
            attention_mask=batch.mask[:rows, : length + 1],
            position_ids=batch.positions[:rows, None],
            cache=_SlotCache(batch.layers()),
        )
        batch.length += 1
        batch.positions[:rows] += 1
        return logits

    def remove(self, rows: Sequence[int]) -> list[int]:
        return self._remove(rows)

    def _remove(self, rows: Sequence[int]) -> list[int]:
        batch = self._batch
        if batch is None:
            return []
        order = list(range(batch.rows))
        for row in sorted(set(rows), reverse=True):
            last = len(order) - 1
            if row != last:
                batch.move_row(last, row)
                order[row] = order[last]
            order.pop()
        batch.rows = len(order)
        if batch.rows == 0:
            self._batch = None
        elif batch.row_capacity > 8 and batch.rows <= batch.row_capacity // 4:
            # Mostly empty: give the memory back (a copy of the few live rows).
            length = batch.length - batch.first_used_column()
            batch.relayout(max(8, 2 * batch.rows), length, self._room(length))
            self.reallocations += 1
        return order

    def clear(self) -> None:
        self._batch = None

    def kv_bytes(self) -> int:
        return 0 if self._batch is None else self._batch.nbytes()


# ---- one cache per request ----------------------------------------------------------------------


@dataclass
class _SerialRow:
    cache: DynamicCache
    position: int


class SerialBackend(Backend):
    def __init__(self, model: PreTrainedModel) -> None:
        self._model = model
        self._device = next(model.parameters()).device
        self._use_keep = _accepts_logits_to_keep(model)
        self._rows: list[_SerialRow] = []

    def score(self, ids: Sequence[int]) -> float:
        return sequence_nll(self._model, ids)

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[list[_SerialRow], torch.Tensor]:
        rows, logits = [], []
        for prompt in prompts:
            cache = DynamicCache(config=self._model.config)
            ids = torch.tensor([list(prompt)], dtype=torch.long, device=self._device)
            logits.append(
                _last_logits(
                    self._model,
                    self._use_keep,
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    cache=cache,
                )
            )
            rows.append(_SerialRow(cache, len(prompt)))
        return rows, torch.cat(logits)

    def merge(
        self, chunks: Sequence[object], keep: Sequence[Sequence[int]]
    ) -> list[tuple[int, int]]:
        appended: list[tuple[int, int]] = []
        for number, (chunk, rows) in enumerate(zip(chunks, keep, strict=True)):
            assert isinstance(chunk, list)
            self._rows.extend(chunk[i] for i in rows)
            appended.extend((number, row) for row in rows)
        return appended

    def decode(self, tokens: Sequence[int]) -> torch.Tensor:
        logits = []
        for row, token in zip(self._rows, tokens, strict=True):
            ids = torch.tensor([[token]], dtype=torch.long, device=self._device)
            logits.append(
                _last_logits(
                    self._model,
                    False,
                    input_ids=ids,
                    attention_mask=torch.ones(
                        (1, row.position + 1), dtype=torch.long, device=self._device
                    ),
                    cache=row.cache,
                )
            )
            row.position += 1
        return torch.cat(logits)

    def remove(self, rows: Sequence[int]) -> list[int]:
        dropped = set(rows)
        order = [i for i in range(len(self._rows)) if i not in dropped]
        self._rows = [self._rows[i] for i in order]
        return order

    def clear(self) -> None:
        self._rows = []

    def kv_bytes(self) -> int:
        total = 0
        for row in self._rows:
            for layer in row.cache.layers:
                for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                    if isinstance(tensor, torch.Tensor):
                        total += tensor.numel() * tensor.element_size()
        return total
