"""KV-cache handling for continuous batching.

`PaddedBackend` (the fast path) keeps every running request in one batch whose KV cache is
left-padded: row i holds its request's keys/values right-aligned, so all rows end at the same cache
position and one decoding step is one forward pass of shape [B, 1]. The attention mask marks the
padding and `position_ids` carry each row's own positions, so a row attends to exactly what it
would attend to alone. Keys/values live in preallocated buffers [B, H, capacity, D] that grow by
`headroom` steps at a time (transformers' DynamicCache concatenates, copying the whole cache on
every step); the model sees views of the filled part. Requests join by merging their prefill's cache
into the batch (re-padding whichever side is shorter) and leave by selecting the remaining rows
(and dropping leading columns that became padding for every row).

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
    if use_keep:
        inputs["logits_to_keep"] = 1
    out = model(**inputs, use_cache=True, return_dict=True)
    logits: torch.Tensor = out.logits
    return logits[:, -1, :]


# ---- the padded batch ---------------------------------------------------------------------------


class _BufferLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """One layer's keys/values in a preallocated buffer [B, H, capacity, D]; `keys`/`values` are
    views of the first `length` positions, as transformers expects of a DynamicLayer."""

    def __init__(self, capacity: int, headroom: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.capacity = capacity
        self.headroom = headroom
        self.length = 0
        self.kbuf: torch.Tensor | None = None
        self.vbuf: torch.Tensor | None = None

    @classmethod
    def of(cls, kbuf: torch.Tensor, vbuf: torch.Tensor, length: int, headroom: int) -> _BufferLayer:
        layer = cls(kbuf.shape[2], headroom)
        layer.dtype, layer.device = kbuf.dtype, kbuf.device
        layer.kbuf, layer.vbuf, layer.length = kbuf, vbuf, length
        layer.is_initialized = True
        layer._views()
        return layer

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        capacity = max(self.capacity, key_states.shape[2])
        self.kbuf = key_states.new_zeros((*key_states.shape[:2], capacity, key_states.shape[3]))
        self.vbuf = value_states.new_zeros(
            (*value_states.shape[:2], capacity, value_states.shape[3])
        )
        self.capacity = capacity
        self.is_initialized = True

    def _views(self) -> None:
        assert self.kbuf is not None
        assert self.vbuf is not None
        self.keys = self.kbuf[:, :, : self.length]
        self.values = self.vbuf[:, :, : self.length]

    def reserve(self, total: int) -> None:
        """Make room for `total` positions (grown by `headroom` beyond it)."""
        if self.kbuf is None or self.vbuf is None or total <= self.capacity:
            return
        capacity = total + self.headroom
        kbuf = self.kbuf.new_zeros((*self.kbuf.shape[:2], capacity, self.kbuf.shape[3]))
        vbuf = self.vbuf.new_zeros((*self.vbuf.shape[:2], capacity, self.vbuf.shape[3]))
        kbuf[:, :, : self.length] = self.kbuf[:, :, : self.length]
        vbuf[:, :, : self.length] = self.vbuf[:, :, : self.length]
        self.kbuf, self.vbuf, self.capacity = kbuf, vbuf, capacity
        self._views()

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[2]
        self.reserve(end)
        assert self.kbuf is not None
        assert self.vbuf is not None
        self.kbuf[:, :, self.length : end] = key_states
        self.vbuf[:, :, self.length : end] = value_states
        self.length = end
        keys, values = self.kbuf[:, :, :end], self.vbuf[:, :, :end]
        self.keys, self.values = keys, values
        return keys, values

    def get_seq_length(self) -> int:
        return self.length

    def nbytes(self) -> int:
        if self.kbuf is None or self.vbuf is None:
            return 0
        return (
            self.kbuf.numel() * self.kbuf.element_size()
            + self.vbuf.numel() * self.vbuf.element_size()
        )


class _BufferCache(DynamicCache):
    """A DynamicCache whose layers are the engine's buffers."""

    def __init__(self, layers: list[_BufferLayer]) -> None:
        Cache.__init__(self, layers=list(layers))


@dataclass
class PaddedKV:
    """A left-padded batch: per-layer buffers, the attention mask [B, capacity] (1 = real token),
    and the position id of each row's next token."""

    layers: list[_BufferLayer]
    mask: torch.Tensor
    positions: torch.Tensor

    @property
    def length(self) -> int:
        return self.layers[0].length

    @property
    def size(self) -> int:
        return int(self.positions.shape[0])

    def nbytes(self) -> int:
        return sum(layer.nbytes() for layer in self.layers)

    def reserve(self, total: int, headroom: int) -> None:
        for layer in self.layers:
            layer.reserve(total)
        if total > self.mask.shape[1]:
            mask = self.mask.new_zeros((self.mask.shape[0], total + headroom))
            mask[:, : self.mask.shape[1]] = self.mask
            self.mask = mask

    def select(self, rows: Sequence[int], headroom: int) -> PaddedKV:
        """The batch of `rows` only, with leading all-padding columns dropped."""
        index = torch.tensor(list(rows), dtype=torch.long, device=self.mask.device)
        length = self.length
        mask = self.mask.index_select(0, index)[:, :length]
        used = mask.any(dim=0).nonzero()
        start = int(used[0]) if used.numel() else length
        new_length = length - start
        layers = []
        for layer in self.layers:
            assert layer.kbuf is not None
            assert layer.vbuf is not None
            kbuf = layer.kbuf.new_zeros(
                (len(rows), layer.kbuf.shape[1], new_length + headroom, layer.kbuf.shape[3])
            )
            vbuf = layer.vbuf.new_zeros(
                (len(rows), layer.vbuf.shape[1], new_length + headroom, layer.vbuf.shape[3])
            )
            kbuf[:, :, :new_length] = layer.kbuf[index, :, start:length]
            vbuf[:, :, :new_length] = layer.vbuf[index, :, start:length]
            layers.append(_BufferLayer.of(kbuf, vbuf, new_length, headroom))
        new_mask = mask.new_zeros((len(rows), new_length + headroom))
        new_mask[:, :new_length] = mask[:, start:]
        return PaddedKV(layers, new_mask, self.positions.index_select(0, index))

    @staticmethod
    def concat(parts: Sequence[PaddedKV], headroom: int) -> PaddedKV:
        """One batch of all rows of `parts`, right-aligned to the longest."""
        if len(parts) == 1:
            return parts[0]
        length = max(part.length for part in parts)
        rows = sum(part.size for part in parts)
        capacity = length + headroom
        layers = []
        for index, first in enumerate(parts[0].layers):
            assert first.kbuf is not None
            assert first.vbuf is not None
            kbuf = first.kbuf.new_zeros((rows, first.kbuf.shape[1], capacity, first.kbuf.shape[3]))
            vbuf = first.vbuf.new_zeros((rows, first.vbuf.shape[1], capacity, first.vbuf.shape[3]))
            row = 0
            for part in parts:
                layer = part.layers[index]
                assert layer.kbuf is not None
                assert layer.vbuf is not None
                end = row + part.size
                kbuf[row:end, :, length - layer.length : length] = layer.kbuf[:, :, : layer.length]
                vbuf[row:end, :, length - layer.length : length] = layer.vbuf[:, :, : layer.length]
                row = end
            layers.append(_BufferLayer.of(kbuf, vbuf, length, headroom))
        mask = parts[0].mask.new_zeros((rows, capacity))
        row = 0
        for part in parts:
            end = row + part.size
            mask[row:end, length - part.length : length] = part.mask[:, : part.length]
            row = end
        positions = torch.cat([part.positions for part in parts])
        return PaddedKV(layers, mask, positions)


class Backend:
    """What the scheduler needs of a KV strategy. Rows are in the order requests were added."""

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[object, torch.Tensor]:
        """Run the prompts; return a chunk to `merge` and the next-token logits [n, V]."""
        raise NotImplementedError

    def merge(self, chunks: Sequence[object], keep: Sequence[Sequence[int]]) -> None:
        """Append the chunks' rows (`keep[i]`: the rows of chunk i still running) to the batch."""
        raise NotImplementedError

    def decode(self, tokens: Sequence[int]) -> torch.Tensor:
        """Feed one token per row; return the next-token logits [B, V]."""
        raise NotImplementedError

    def select(self, rows: Sequence[int]) -> None:
        """Keep only `rows` of the batch (in this order)."""
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def kv_bytes(self) -> int:
        raise NotImplementedError


class DetachedBackend(Backend):
    """What a closed engine keeps: nothing."""

    def clear(self) -> None:
        pass

    def kv_bytes(self) -> int:
        return 0


class PaddedBackend(Backend):
    def __init__(self, model: PreTrainedModel, *, headroom: int, pad_token_id: int) -> None:
        self._model = model
        self._headroom = headroom
        self._pad = pad_token_id
        self._device = next(model.parameters()).device
        text_config = model.config.get_text_config(decoder=True)
        self._num_layers = int(text_config.num_hidden_layers)
        self._use_keep = _accepts_logits_to_keep(model)
        self._kv: PaddedKV | None = None

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[PaddedKV, torch.Tensor]:
        rows, length = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((rows, length), self._pad, dtype=torch.long)
        mask = torch.zeros((rows, length), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, length - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, length - len(prompt) :] = 1
        input_ids, mask = input_ids.to(self._device), mask.to(self._device)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        layers = [
            _BufferLayer(length + self._headroom, self._headroom) for _ in range(self._num_layers)
        ]
        logits = _last_logits(
            self._model,
            self._use_keep,
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            past_key_values=_BufferCache(layers),
        )
        shortest = min(len(p) for p in prompts)
        if shortest < length:
            # Padding positions were computed from attention rows that may be fully masked: zero
            # them so no stray inf/NaN can ever reach a real row (0 * NaN is NaN).
            pad = (mask[:, : length - shortest] == 0)[:, None, :, None]
            for layer in layers:
                assert layer.kbuf is not None
                assert layer.vbuf is not None
                layer.kbuf[:, :, : length - shortest].masked_fill_(pad, 0)
                layer.vbuf[:, :, : length - shortest].masked_fill_(pad, 0)
        full_mask = mask.new_zeros((rows, length + self._headroom))
        full_mask[:, :length] = mask
        return PaddedKV(layers, full_mask, mask.sum(-1)), logits

    def merge(self, chunks: Sequence[object], keep: Sequence[Sequence[int]]) -> None:
        parts: list[PaddedKV] = [] if self._kv is None else [self._kv]
        for chunk, rows in zip(chunks, keep, strict=True):
            assert isinstance(chunk, PaddedKV)
            if not rows:
                continue
            parts.append(chunk if len(rows) == chunk.size else chunk.select(rows, self._headroom))
        self._kv = PaddedKV.concat(parts, self._headroom) if parts else None

    def decode(self, tokens: Sequence[int]) -> torch.Tensor:
        kv = self._kv
        assert kv is not None
        assert kv.size == len(tokens)
        length = kv.length
        kv.reserve(length + 1, self._headroom)
        kv.mask[:, length] = 1
        logits = _last_logits(
            self._model,
            False,
            input_ids=torch.tensor(list(tokens), dtype=torch.long, device=self._device)[:, None],
            attention_mask=kv.mask[:, : length + 1],
            position_ids=kv.positions[:, None],
            past_key_values=_BufferCache(kv.layers),
        )
        kv.positions += 1
        return logits

    def select(self, rows: Sequence[int]) -> None:
        if self._kv is None:
            return
        self._kv = self._kv.select(rows, self._headroom) if rows else None

    def clear(self) -> None:
        self._kv = None

    def kv_bytes(self) -> int:
        return 0 if self._kv is None else self._kv.nbytes()


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
                    past_key_values=cache,
                )
            )
            rows.append(_SerialRow(cache, len(prompt)))
        return rows, torch.cat(logits)

    def merge(self, chunks: Sequence[object], keep: Sequence[Sequence[int]]) -> None:
        for chunk, rows in zip(chunks, keep, strict=True):
            assert isinstance(chunk, list)
            self._rows.extend(chunk[i] for i in rows)

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
                    past_key_values=row.cache,
                )
            )
            row.position += 1
        return torch.cat(logits)

    def select(self, rows: Sequence[int]) -> None:
        self._rows = [self._rows[i] for i in rows]

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
