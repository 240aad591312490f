"""Optional int8 weights for CPU serving: torch's dynamic quantization of linear layers.

`quantize_linear_int8` swaps every `nn.Linear` of a float32 CPU model for torch's
`DynamicQuantizedLinear`: weights held as int8 (a quarter of the memory), each step's
activations quantized on the fly, the product run by FBGEMM/oneDNN int8 kernels. It is one
candidate of the load-time measurement (tuning.py, setting INFERENCE_CPU_QUANTIZATION), checked
for greedy agreement with the float32 reference like every other, and kept only where it is
both faithful and fastest: int8 rounding often changes a small model's greedy tokens, and on
CPUs with fast float kernels (oneDNN-packed fp32, AMX bf16) it rarely wins.

Why this and not torchao: torchao's int8 configurations (weight-only, and dynamic activation +
weight) run as tensor subclasses that need `torch.compile` to reach fast kernels on CPU; eager,
two SmolLM2-sized linear layers took 12.8 ms per call at batch 1 on the 2-core test machine, for
a whole decode step of ~18 ms with torch's dynamic quantization (35 ms in bf16 there). Torch
has marked `torch.ao.quantization` and its quantized tensors deprecated in favour of torchao
(still present in the pinned torch 2.13); its warnings are silenced here once that trade is
made, and this module is the one place to change when they go.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["int8_available", "int8_linear_bytes", "is_quantized", "quantize_linear_int8"]

_INT8_LINEAR = torch.ao.nn.quantized.dynamic.Linear


def int8_available() -> bool:
    """This torch build has a CPU int8 GEMM engine (FBGEMM on x86, QNNPACK on ARM)."""
    engines = set(torch.backends.quantized.supported_engines)
    return bool(engines & {"fbgemm", "x86", "onednn", "qnnpack"})


def quantize_linear_int8(model: PreTrainedModel) -> bool:
    """Quantize `model`'s linear layers in place to int8 weights; False when it has none (or
    is not a float32 CPU model: the kernels take float32 activations on CPU only)."""
    parameter = next(model.parameters())
    if parameter.device.type != "cpu" or parameter.dtype != torch.float32:
        return False
    if not any(isinstance(m, torch.nn.Linear) for m in model.modules()):
        return False
    with warnings.catch_warnings():
        # Both of torch's notices that this API is deprecated (see the module docstring).
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated")
        torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
    return True


def is_quantized(model: torch.nn.Module) -> bool:
    return any(isinstance(m, _INT8_LINEAR) for m in model.modules())


def int8_linear_bytes(model: torch.nn.Module) -> int:
    """Bytes of the int8 layers' packed weights and biases, which are neither parameters nor
    buffers (so `model.parameters()` does not count them)."""
    total = 0
    for module in model.modules():
        if isinstance(module, _INT8_LINEAR):
            weight, bias = module._weight_bias()
            total += weight.numel() * weight.element_size()
            total += 0 if bias is None else bias.numel() * bias.element_size()
    return total
