"""The one way llmnet loads a language model: upload validation and inference both come here.

A model is a Hugging Face folder (config.json, *.safetensors, tokenizer files) or a single GGUF
file. Loading never runs code that ships with a model and never unpickles: `trust_remote_code` is
always False, configs that ask for custom code (`auto_map`) are refused before transformers sees
them, weights are read from safetensors only, and nothing is fetched from the Hub
(`local_files_only=True`; the validation sandbox also sets HF_HUB_OFFLINE=1).

`check_model_dir` inspects the files first so a broken upload fails with a message its owner can
act on ("config.json is not valid JSON: ...", "safetensors file x is truncated ...") rather than a
transformers traceback. Every such failure is a `ModelFileError`, a ValueError.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

# torch and transformers take seconds to import; they are imported where first needed so that
# `check_model_files` (all the checks that need no transformers) answers at once.
if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "ModelFileError",
    "check_gguf_file",
    "check_model_dir",
    "check_model_files",
    "convert_gguf_to_safetensors",
    "default_dtype",
    "load_causal_lm",
]

# safetensors' own reader refuses headers above 100 MB; so do we, before reading one.
_MAX_SAFETENSORS_HEADER = 100_000_000
_GGUF_MAGIC = b"GGUF"


class ModelFileError(ValueError):
    """The model's files are wrong in a way its owner can fix; the message says how."""


def default_dtype(device: str) -> torch.dtype:
    """float32 on CPU (bf16 matmuls are slow there and fp16 is not supported everywhere);
    bfloat16 on accelerators."""
    import torch

    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


# ---- checking the files -------------------------------------------------------------------------


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path.name} is not valid UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path.name} must hold a JSON object, not {type(data).__name__}")
    return data


def _refuse_custom_code(path: Path, data: dict[str, Any]) -> None:
    if "auto_map" in data:
        raise ModelFileError(
            f"{path.name} asks for custom code (auto_map: {json.dumps(data['auto_map'])[:200]}); "
            "models that need trust_remote_code are not accepted. Use an architecture built into "
            "transformers."
        )


def _check_config(model_dir: Path) -> dict[str, Any]:
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ModelFileError(
            "config.json is missing: a Hugging Face model folder needs config.json next to the "
            "weights (save the model with save_pretrained)"
        )
    config = _read_json_object(config_file)
    _refuse_custom_code(config_file, config)
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ModelFileError("config.json has no model_type: save the model with save_pretrained")
    return config


def _check_model_type(model_type: str) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING:
        raise ModelFileError(
            f"model type {model_type!r} is not supported by transformers "
            "(custom architectures are not accepted)"
        )
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelFileError(
            f"model type {model_type!r} has no text-generation (causal LM) head in transformers; "
            "upload a model that generates text"
        )


def _check_safetensors_file(path: Path) -> None:
    """Header parses and the file is as long as the header says (catches interrupted uploads)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ModelFileError(f"safetensors file {path.name} is truncated: upload it again")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > _MAX_SAFETENSORS_HEADER:
            raise ModelFileError(f"safetensors file {path.name} has a corrupt header")
        if 8 + header_len > size:
            raise ModelFileError(
                f"safetensors file {path.name} is truncated ({size} bytes, the header alone "
                f"needs {8 + header_len}): upload it again"
            )
        raw_header = handle.read(header_len)
    try:
        header = json.loads(raw_header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"safetensors file {path.name} has a corrupt header: {exc}") from exc
    if not isinstance(header, dict):
        raise ModelFileError(f"safetensors file {path.name} has a corrupt header")
    data_len = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(offset, int) for offset in offsets)
        ):
            raise ModelFileError(
                f"safetensors file {path.name} has a corrupt header (tensor {name!r})"
            )
        data_len = max(data_len, offsets[1])
    expected = 8 + header_len + data_len
    if size < expected:
        raise ModelFileError(
            f"safetensors file {path.name} is truncated ({size} of {expected} bytes): "
            "upload it again"
        )


def _check_weights(model_dir: Path) -> None:
    files = sorted(model_dir.glob("*.safetensors"))
    index_file = model_dir / "model.safetensors.index.json"
    if index_file.is_file():
        index = _read_json_object(index_file)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict):
            raise ModelFileError("model.safetensors.index.json has no weight_map")
        missing = sorted({str(f) for f in weight_map.values()} - {f.name for f in files})
        if missing:
            raise ModelFileError(
                f"safetensors shards listed in model.safetensors.index.json are missing: "
                f"{', '.join(missing[:5])}"
            )
    if not files:
        pickles = sorted(p.name for p in model_dir.glob("*.bin")) + sorted(
            p.name for p in model_dir.glob("*.pt*")
        )
        if pickles:
            raise ModelFileError(
                f"only pickle weights were found ({', '.join(pickles[:3])}); they are never loaded "
                "because unpickling can run code. Convert them to safetensors "
                "(model.save_pretrained writes safetensors) and upload again"
            )
        raise ModelFileError("no weights found: add model.safetensors (or its shards)")
    for path in files:
        _check_safetensors_file(path)


def _check_tokenizer(model_dir: Path) -> None:
    tokenizer_config = model_dir / "tokenizer_config.json"
    if tokenizer_config.is_file():
        _refuse_custom_code(tokenizer_config, _read_json_object(tokenizer_config))
    tokenizer_json = model_dir / "tokenizer.json"
    if tokenizer_json.is_file():
        _read_json_object(tokenizer_json)
        return
    has_bpe_files = (model_dir / "vocab.json").is_file() and (model_dir / "merges.txt").is_file()
    if has_bpe_files or (model_dir / "tokenizer.model").is_file():
        return
    raise ModelFileError(
        "tokenizer files are missing: add tokenizer.json (or vocab.json + merges.txt, "
        "or a sentencepiece tokenizer.model)"
    )


def check_gguf_file(path: Path) -> None:
    """The file exists and starts with the GGUF magic."""
    if not path.is_file():
        raise ModelFileError(f"GGUF file {path.name} was not found")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != _GGUF_MAGIC:
        raise ModelFileError(f"{path.name} is not a GGUF file (it does not start with 'GGUF')")


def check_model_files(model_dir: Path) -> dict[str, Any]:
    """Check a Hugging Face model folder's files without transformers (config.json parses and
    asks for no custom code, safetensors weights are whole, tokenizer files are there); return
    config.json. Raises `ModelFileError` with a message for the model's owner."""
    if not model_dir.is_dir():
        raise ModelFileError(f"model folder {model_dir.name} was not found")
    config = _check_config(model_dir)
    _check_weights(model_dir)
    _check_tokenizer(model_dir)
    return config


def check_model_dir(model_dir: Path) -> dict[str, Any]:
    """`check_model_files`, and transformers knows the model type and can generate with it."""
    config = check_model_files(model_dir)
    _check_model_type(str(config["model_type"]))
    return config


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
