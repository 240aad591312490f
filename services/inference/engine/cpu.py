"""Faster linear layers on CPU: weights pre-packed for oneDNN.

Decoding multiplies a few rows of activations by every weight matrix of the model. With the
weights packed once into oneDNN's blocked layout (`mkldnn._reorder_linear_weight`, as PyTorch's
own compiler does when it freezes a CPU model) those products ran about twice as fast as
`nn.functional.linear` on the 2-core test machine, at every batch size from 1 to 32 (SmolLM2-135M:
23 vs 44 ms per step alone, 35 vs 73 ms at 16 rows). The results differ from the dense kernel only
by float rounding (~1e-4 on logits of size ~30).

bfloat16 weights pack too, where oneDNN runs bf16 (`mkldnn._is_mkldnn_bf16_supported`): a dense
bf16 `linear` hands oneDNN weights in the plain layout on every call, and it reorders them each
time. On a 2-core Xeon with AMX, one thread, SmolLM2-135M's shapes: 1.2-2.1x faster packed at
1 row (the 49152 x 576 output layer 5.1 vs 2.4 ms) and 1.4-2.1x at 16 rows, with bit-identical
outputs; so every bf16 layer is packed, however small (at 192 x 576, 21 vs 32 us).

`pack_linear_layers` swaps every plain `nn.Linear` of a float32 or bfloat16 CPU model for
`PackedLinear`, then checks the model still gives the same logits on a probe prompt; when it does
not (say a model reads a linear layer's `.weight` itself), the engine loads the model again
without packing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "MIN_PACKED_ELEMENTS",
    "PackedLinear",
    "PackingBroke",
    "pack_linear_layers",
    "packable",
]

logger = logging.getLogger("llmnet.inference.engine")

_PROBE = (1, 2, 3, 4, 5, 6, 7, 8)


def onednn_available() -> bool:
    return bool(
        getattr(torch._C, "_has_mkldnn", False)
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def packable(dtype: torch.dtype) -> bool:
    """Whether linear layers of this dtype can be packed for oneDNN here."""
    if dtype == torch.bfloat16:
        return onednn_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return dtype == torch.float32 and onednn_available()


def _tolerance(dtype: torch.dtype) -> float:
    """How far a packed product may stray, relative to the largest value: float rounding of
    the dtype's sums, not a different result."""
    return 1e-3 if dtype == torch.float32 else 2e-2


class PackedLinear(torch.nn.Module):
    """`nn.Linear` (float32 or bfloat16, CPU, inference only), its weight packed for oneDNN."""

    def __init__(self, linear: torch.nn.Linear, batch_hint: int) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach()
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint)
        self.register_buffer("packed_weight", packed, persistent=False)
        bias = None if linear.bias is None else linear.bias.detach()
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self.packed_weight, self.bias, "none", [], ""
        )
        return out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, oneDNN"


def _probe_logits(model: PreTrainedModel) -> torch.Tensor:
    vocab = int(model.config.get_text_config(decoder=True).vocab_size)
    ids = torch.tensor([[min(i, vocab - 1) for i in _PROBE]], dtype=torch.long)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    logits: torch.Tensor = out.logits.float()
    return logits


class PackingBroke(RuntimeError):
    """The model was changed and no longer gives the same logits: load it again unpacked."""


#: Smaller float32 layers stay dense: a packed product costs ~18 us more per call, which only
#: pays off from about 512 x 512 weights on (bfloat16 layers pack from any size, see above).
MIN_PACKED_ELEMENTS = 1 << 18


def pack_linear_layers(
    model: PreTrainedModel, *, batch_hint: int, min_elements: int = MIN_PACKED_ELEMENTS
) -> bool:
    """Swap the model's `nn.Linear` layers for `PackedLinear` in place, one at a time (so memory
    never holds both copies of the weights); `min_elements` spares small float32 layers. False
    when nothing was changed (not all float32 or all bfloat16 on CPU, no oneDNN for the dtype, no
    linear layer, or a layer's outputs would differ); raises `PackingBroke` when the swapped model
    fails the probe: the caller must then load the model again."""
    parameters = list(model.parameters())
    if not parameters:
        return False
    dtype = parameters[0].dtype
    if not packable(dtype) or any(p.device.type != "cpu" or p.dtype != dtype for p in parameters):
        return False
    if dtype != torch.float32:
        min_elements = 0
    with torch.inference_mode():
        before = _probe_logits(model)
        # (parent, name) only: a replaced layer's dense weight is freed as soon as it is swapped.
        targets = [
            (parent, name)
            for parent in model.modules()
            for name, child in parent.named_children()
            if type(child) is torch.nn.Linear and child.weight.numel() >= min_elements
        ]
        if not targets:
            return False
        first = getattr(*targets[0])
        if not _same_outputs(first, PackedLinear(first, batch_hint)):
            return False
        del first
        for parent, name in targets:
            setattr(parent, name, PackedLinear(getattr(parent, name), batch_hint))
        try:
            after = _probe_logits(model)
        except Exception as exc:
            raise PackingBroke(f"{type(exc).__name__}: {exc}") from exc
        scale = 1.0 + float(before.abs().max())
        if (
            not bool(torch.isfinite(after).all())
            or float((after - before).abs().max()) > _tolerance(dtype) * scale
        ):
            raise PackingBroke("the packed model's logits differ from the original's")
    return True


def _same_outputs(linear: torch.nn.Linear, packed: PackedLinear) -> bool:
    dtype = linear.weight.dtype
    x = torch.randn(3, linear.in_features, generator=torch.Generator().manual_seed(0)).to(dtype)
    try:
        expected, got = linear(x).float(), packed(x).float()
    except Exception:
        return False
    tolerance = _tolerance(dtype)
    atol = tolerance / 10 * (1 + float(expected.abs().max()))
    return bool(torch.allclose(expected, got, rtol=tolerance, atol=atol))
