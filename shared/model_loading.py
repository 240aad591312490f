"""The one way llmnet loads a language model: upload validation and inference both come here.

A model is a Hugging Face folder (config.json, *.safetensors, tokenizer files) or a single GGUF
file. Loading never runs code that ships with a model and never unpickles: `trust_remote_code` is
always False, configs that ask for custom code (`auto_map`) are refused before transformers sees
them, weights are read from safetensors only, and nothing is fetched from the Hub
(`local_files_only=True`; the validation sandbox also sets HF_HUB_OFFLINE=1).

What a loadable folder is, and the checks that say so, live in `shared.model_files`: loading
runs `check_model_dir` first so a broken model fails with a message its owner can act on
("config.json is not valid JSON: ...", "safetensors file x is truncated ...") rather than a
transformers traceback. Every such failure is a `ModelFileError`, a ValueError.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from shared.model_files import ModelFileError, check_gguf_file, check_model_dir

# torch and transformers take seconds to import; they are imported where first needed.
if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["convert_gguf_to_safetensors", "default_dtype", "load_causal_lm"]


def default_dtype(device: str) -> torch.dtype:
    """float32 on CPU (bf16 matmuls are slow there and fp16 is not supported everywhere);
    bfloat16 on accelerators."""
    import torch

    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


# ---- loading ------------------------------------------------------------------------------------


def load_causal_lm(
    model_dir: Path,
    *,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    gguf_file: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from `model_dir` (or from `model_dir / gguf_file`),
    in eval mode on `device`, in `dtype` (default: float32 on CPU, bfloat16 elsewhere)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model_dir = Path(model_dir)
    if dtype is None:
        dtype = default_dtype(device)
    # transformers 5 defaults `dtype` to "auto" (the checkpoint's own dtype, often bf16) where 4.x
    # loaded float32, so the dtype is always passed. `torch_dtype` is deprecated in favour of
    # `dtype`.
    common: dict[str, Any] = {"trust_remote_code": False, "local_files_only": True}
    model_kwargs: dict[str, Any] = {**common, "dtype": dtype}
    if torch.device(device).type != "cpu":
        # Place weights straight on the accelerator instead of staging them in host memory.
        model_kwargs["device_map"] = {"": device}
    if gguf_file is not None:
        check_gguf_file(model_dir / gguf_file)
        tokenizer_kwargs: dict[str, Any] = {**common, "gguf_file": gguf_file}
        model_kwargs["gguf_file"] = gguf_file
        # transformers 5.23 loads a GGUF through a quantizer that keeps weights packed, needs
        # the `kernels` package (and a Hub-hosted attention kernel) to run them, and refuses to
        # save_pretrained the result. dequantize=True gives a plain dense model instead.
        model_kwargs["quantization_config"] = GgufConfig(dequantize=True)
    else:
        check_model_dir(model_dir)
        tokenizer_kwargs = dict(common)
        model_kwargs["use_safetensors"] = True
    tokenizer = AutoTokenizer.from_pretrained(model_dir, **tokenizer_kwargs)
    model = cast("PreTrainedModel", AutoModelForCausalLM.from_pretrained(model_dir, **model_kwargs))
    torch.nn.Module.eval(model)
    if "device_map" not in model_kwargs:
        torch.nn.Module.to(model, device)
    return model, cast("PreTrainedTokenizerBase", tokenizer)


# ---- GGUF -> safetensors ------------------------------------------------------------------------


def _gguf_storage_dtype(gguf_path: Path) -> torch.dtype:
    """The dtype to store a GGUF's weights in once dequantized: float32 or float16 when every
    matrix is stored that way, otherwise bfloat16 (quantized blocks lose nothing more in bf16)."""
    import torch
    from gguf import GGMLQuantizationType, GGUFReader

    reader = GGUFReader(gguf_path)
    kinds = {tensor.tensor_type for tensor in reader.tensors if len(tensor.shape) >= 2}
    if kinds <= {GGMLQuantizationType.F32}:
        return torch.float32
    if kinds <= {GGMLQuantizationType.F16}:
        return torch.float16
    return torch.bfloat16


def _gguf_chat_template(gguf_path: Path) -> str | None:
    from gguf import GGUFReader

    field = GGUFReader(gguf_path).fields.get("tokenizer.chat_template")
    if field is None:
        return None
    template = field.contents()
    return template if isinstance(template, str) and template else None


def convert_gguf_to_safetensors(gguf_path: Path, out_dir: Path) -> None:
    """Turn a GGUF file into a plain Hugging Face folder in `out_dir`: config.json (with
    `architectures`), generation_config.json, model.safetensors and the tokenizer files,
    chat template included. Quantized weights are dequantized (to bfloat16)."""
    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    check_gguf_file(gguf_path)
    dtype = _gguf_storage_dtype(gguf_path)
    model, tokenizer = load_causal_lm(
        gguf_path.parent, device="cpu", dtype=dtype, gguf_file=gguf_path.name
    )
    if not getattr(model.config, "architectures", None):
        model.config.architectures = [type(model).__name__]
    if not getattr(tokenizer, "chat_template", None):
        template = _gguf_chat_template(gguf_path)
        if template is not None:
            tokenizer.chat_template = template
    out_dir.mkdir(parents=True, exist_ok=True)
    # transformers 5 only writes safetensors: save_pretrained no longer takes
    # `safe_serialization`.
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if not (out_dir / "model.safetensors").is_file() and not any(
        out_dir.glob("model-*.safetensors")
    ):
        raise ModelFileError(f"converting {gguf_path.name} wrote no safetensors weights")
