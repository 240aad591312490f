"""What a servable model is: the one file policy the hub's upload checks, the validation sandbox
and the inference engine all apply.

A servable model is either

- a Hugging Face folder: `config.json` naming a `model_type` transformers ships (with a causal
  LM head), weights as safetensors only (sharded through `model.safetensors.index.json` or
  not), and tokenizer files (`tokenizer.json`, or `vocab.json` + `merges.txt`, or a
  sentencepiece model); or
- one GGUF file (version 2 or 3), which validation converts to such a folder.

Refused whatever else is right: any JSON config that asks for custom code (`auto_map`, which
only `trust_remote_code` would honour), pickle-based checkpoints (unpickling runs code) and code
files. Every refusal is a `ModelFileError` (a ValueError) whose message tells the model's owner
what to fix; its `code` is the stable error code the hub answers with.

Safetensors headers are checked in plain Python, bounded: the header's length is read first
and refused past the format's own 100 MB limit before any of it is buffered, and then the
header is held to the rules the `safetensors` library loads by (known dtypes, offsets that
tile the data exactly, a file exactly as long as its header says), with messages that name the
sizes. The hub runs this check on a stream (an upload goes straight into storage: there is no
file for `safe_open` yet), the sandbox and the engine on files. Reading the tensors of a file
that already passed (`estimate_parameter_bytes`) goes through the library's `safe_open`, which
caps the header itself and maps the data rather than reading it.

Nothing here imports torch, transformers or the web stack at import time (the sandbox checks
an upload before it pays for torch); `check_model_dir` imports transformers when called.

Exports: ModelFormat, TensorDtype, SAFETENSORS_DTYPES, MAX_SAFETENSORS_HEADER, GGUF_MAGIC,
CONFIG_FILE, INDEX_FILE, PICKLE_EXTENSIONS, CODE_EXTENSIONS, SENTENCEPIECE_NAMES, ModelFileError,
IncompleteModel, PickleRefused, CustomCodeRefused, refuse_code_or_pickle, looks_like_safetensors,
check_json,
check_gguf_head, check_gguf_file, SafetensorsCheck, check_safetensors_file, has_tokenizer,
missing_parts, model_format, check_model_files, check_model_dir, estimate_parameter_bytes.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "CODE_EXTENSIONS",
    "CONFIG_FILE",
    "GGUF_MAGIC",
    "INDEX_FILE",
    "MAX_SAFETENSORS_HEADER",
    "PICKLE_EXTENSIONS",
    "SAFETENSORS_DTYPES",
    "SENTENCEPIECE_NAMES",
    "CustomCodeRefused",
    "IncompleteModel",
    "ModelFileError",
    "ModelFormat",
    "PickleRefused",
    "SafetensorsCheck",
    "TensorDtype",
    "check_gguf_file",
    "check_gguf_head",
    "check_json",
    "check_model_dir",
    "check_model_files",
    "check_safetensors_file",
    "estimate_parameter_bytes",
    "has_tokenizer",
    "looks_like_safetensors",
    "missing_parts",
    "model_format",
    "refuse_code_or_pickle",
]


class ModelFormat(StrEnum):
    """How a model's weights arrive (a version's `format`)."""

    SAFETENSORS = "safetensors"
    GGUF = "gguf"


@dataclass(frozen=True, slots=True)
class TensorDtype:
    size: int  # bytes per element
    # Floating-point tensors are loaded in the serving dtype, so they take its size in memory.
    floating: bool


# The safetensors dtypes torch loads as they are. The library knows a few more (sub-byte F4/F6,
# F8_E8M0, complex C64), which transformers cannot serve as weights: refused at upload.
SAFETENSORS_DTYPES: Final[Mapping[str, TensorDtype]] = MappingProxyType(
    {
        "BOOL": TensorDtype(1, False),
        "U8": TensorDtype(1, False),
        "I8": TensorDtype(1, False),
        "F8_E5M2": TensorDtype(1, True),
        "F8_E4M3": TensorDtype(1, True),
        "I16": TensorDtype(2, False),
        "U16": TensorDtype(2, False),
        "F16": TensorDtype(2, True),
        "BF16": TensorDtype(2, True),
        "I32": TensorDtype(4, False),
        "U32": TensorDtype(4, False),
        "F32": TensorDtype(4, True),
        "I64": TensorDtype(8, False),
        "U64": TensorDtype(8, False),
        "F64": TensorDtype(8, True),
    }
)
# The safetensors library refuses longer headers (its MAX_HEADER_SIZE); so do we, before
# buffering one.
MAX_SAFETENSORS_HEADER: Final = 100_000_000
GGUF_MAGIC: Final = b"GGUF"
GGUF_VERSIONS: Final = (2, 3)
CONFIG_FILE: Final = "config.json"
INDEX_FILE: Final = "model.safetensors.index.json"
TOKENIZER_FILE: Final = "tokenizer.json"
BPE_FILES: Final = frozenset({"vocab.json", "merges.txt"})
SENTENCEPIECE_NAMES: Final = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
PICKLE_EXTENSIONS: Final = (
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".pkl",
    ".pickle",
    ".joblib",
    ".npy",
    ".npz",
)
CODE_EXTENSIONS: Final = (".py", ".pyc", ".pyo", ".so", ".dll", ".dylib", ".sh", ".exe", ".ipynb")
_SAVE_ADVICE = "model.save_pretrained(folder) writes safetensors"


# ---- errors -------------------------------------------------------------------------------------


class ModelFileError(ValueError):
    """The model's files are wrong in a way its owner can fix; the message says how."""

    code: str = "invalid_model_file"


class IncompleteModel(ModelFileError):
    code = "incomplete_model"


class PickleRefused(ModelFileError):
    code = "pickle_refused"


class CustomCodeRefused(ModelFileError):
    code = "code_refused"


# ---- single files -------------------------------------------------------------------------------


def refuse_code_or_pickle(name: str, head: bytes) -> None:
    """Refuse a code file (by name) or a pickle (by its protocol header, or by name)."""
    lower = name.lower()
    if lower.endswith(CODE_EXTENSIONS):
        raise CustomCodeRefused(
            f"{name} is code. Models with custom code are not accepted: use an architecture "
            "transformers ships, without auto_map."
        )
    # A pickle of protocol 2 to 5 starts with PROTO (0x80) and its version; so does a
    # safetensors file whose header is 640, 896, 1152 or 1408 bytes long, told apart by the '{'.
    pickled = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    if (pickled and not looks_like_safetensors(head)) or lower.endswith(PICKLE_EXTENSIONS):
        raise PickleRefused(
            f"{name} is a pickle-based checkpoint, which can run code when loaded. Convert it "
            f"to safetensors ({_SAVE_ADVICE}) and upload that."
        )


def looks_like_safetensors(head: bytes) -> bool:
    """Whether a file's first bytes are a safetensors header's start (its length, then '{')."""
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 2 <= header_len <= MAX_SAFETENSORS_HEADER and head[8:9] == b"{"


def check_json(name: str, raw: bytes) -> Any:
    """The parsed document: JSON that asks for no custom code (and, for a config.json, names a
    model type)."""
    try:
        document = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise ModelFileError(f"{name} is not valid JSON: {exc}") from exc
    if isinstance(document, dict) and "auto_map" in document:
        raise CustomCodeRefused(
            f"{name} asks for custom code (auto_map: {json.dumps(document['auto_map'])[:200]}); "
            "models that need trust_remote_code are not accepted. Use an architecture built "
            "into transformers (and remove auto_map)."
        )
    if name.rsplit("/", 1)[-1].lower() == CONFIG_FILE:
        model_type = document.get("model_type") if isinstance(document, dict) else None
        if not isinstance(model_type, str) or not model_type:
            raise ModelFileError(
                f"{name} has no model_type, so it is not a transformers config: save the model "
                "with save_pretrained"
            )
    return document


def check_gguf_head(name: str, head: bytes) -> None:
    """A GGUF file's first bytes: the magic and a version we read."""
    if not head.startswith(GGUF_MAGIC):
        raise ModelFileError(f"{name} is not a GGUF file (it does not start with 'GGUF')")
    if len(head) < 8:
        raise ModelFileError(f"{name} is too short to be a GGUF file")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in GGUF_VERSIONS:
        raise ModelFileError(f"{name} is GGUF version {version}; versions 2 and 3 are supported")


def check_gguf_file(path: Path) -> None:
    if not path.is_file():
        raise ModelFileError(f"GGUF file {path.name} was not found")
    with path.open("rb") as handle:
        check_gguf_head(path.name, handle.read(8))


class SafetensorsCheck:
    """Checks one safetensors file as its bytes go past, keeping only the header in memory.

    `feed` each chunk in order, then `finish` with the file's size. The header's length is
    checked against MAX_SAFETENSORS_HEADER as soon as its 8 bytes are in, before the header
    itself is buffered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._buffer = bytearray()
        self._header_len: int | None = None
        self.data_size: int | None = None  # bytes the header says follow it

    def feed(self, chunk: bytes) -> None:
        if self.data_size is not None:
            return
        self._buffer += chunk
        if self._header_len is None and len(self._buffer) >= 8:
            (self._header_len,) = struct.unpack("<Q", self._buffer[:8])
            if self._header_len > MAX_SAFETENSORS_HEADER:
                raise self._corrupt(
                    f"its header claims {self._header_len} bytes, past the format's limit of "
                    f"{MAX_SAFETENSORS_HEADER}"
                )
        if self._header_len is not None and len(self._buffer) >= 8 + self._header_len:
            self.data_size = self._data_size(bytes(self._buffer[8 : 8 + self._header_len]))
            self._buffer = bytearray()

    @property
    def header_bytes_wanted(self) -> int:
        """How many more bytes complete the header (8 until its length is known)."""
        if self.data_size is not None:
            return 0
        wanted = 8 if self._header_len is None else 8 + self._header_len
        return max(0, wanted - len(self._buffer))

    def _corrupt(self, why: str) -> ModelFileError:
        return ModelFileError(f"safetensors file {self.name} has a corrupt header: {why}")

    def _data_size(self, raw: bytes) -> int:
        """The bytes of tensor data the header describes, held to the library's rules."""
        try:
            header = json.loads(raw)
        except ValueError as exc:
            raise self._corrupt(str(exc)) from exc
        if not isinstance(header, dict):
            raise self._corrupt("it is not a JSON object")
        metadata = header.pop("__metadata__", {})
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise self._corrupt("__metadata__ must map names to strings")
        spans = sorted((self._span(tensor, info), tensor) for tensor, info in header.items())
        end = 0
        for (begin, stop), tensor in spans:
            if begin != end:  # the library refuses gaps and overlaps alike
                raise self._corrupt(f"tensor {tensor!r} does not start where the previous ends")
            end = stop
        return end

    def _span(self, tensor: str, info: Any) -> tuple[int, int]:
        try:
            dtype, shape, (begin, stop) = info["dtype"], info["shape"], info["data_offsets"]
            element = SAFETENSORS_DTYPES[dtype]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(
                f"tensor {tensor!r} needs a dtype (one of {', '.join(SAFETENSORS_DTYPES)}), a "
                "shape and data_offsets"
            ) from exc
        numbers = [*shape, begin, stop] if isinstance(shape, list) else None
        if numbers is None or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers
        ):
            raise self._corrupt(f"tensor {tensor!r} has a malformed shape or data_offsets")
        if stop < begin or stop - begin != math.prod(shape) * element.size:
            raise self._corrupt(f"tensor {tensor!r} has offsets that do not match its shape")
        return begin, stop

    def finish(self, total_size: int) -> None:
        if self.data_size is None:
            raise ModelFileError(
                f"safetensors file {self.name} is truncated: its header is incomplete. "
                "Upload it again."
            )
        expected = 8 + (self._header_len or 0) + self.data_size
        if total_size < expected:
            raise ModelFileError(
                f"safetensors file {self.name} is truncated ({total_size} of the {expected} "
                "bytes its header describes): upload it again"
            )
        if total_size > expected:
            raise ModelFileError(
                f"safetensors file {self.name} has {total_size - expected} unexpected trailing "
                "bytes"
            )


def check_safetensors_file(path: Path, name: str | None = None) -> None:
    """`SafetensorsCheck` on a file: only its header is read."""
    check = SafetensorsCheck(name or path.name)
    with path.open("rb") as handle:
        while wanted := check.header_bytes_wanted:
            chunk = handle.read(wanted)
            if not chunk:
                break
            check.feed(chunk)
    check.finish(path.stat().st_size)


# ---- the whole model ----------------------------------------------------------------------------


def has_tokenizer(names: Collection[str]) -> bool:
    """Whether the files at a model folder's root include a tokenizer transformers can load."""
    return (
        TOKENIZER_FILE in names
        or set(names) >= BPE_FILES
        or any(name in names for name in SENTENCEPIECE_NAMES)
    )


def missing_parts(names: Collection[str]) -> list[str]:
    """What a Hugging Face folder whose root holds `names` lacks, each as 'X is missing: add Y'
    (empty when nothing is missing)."""
    missing = []
    if CONFIG_FILE not in names:
        missing.append(
            "config.json is missing: add the config.json that save_pretrained writes next to "
            "the weights"
        )
    if not any(name.endswith(".safetensors") for name in names):
        missing.append("weights are missing: add model.safetensors (or its shards)")
    if not has_tokenizer(names):
        missing.append(
            "tokenizer files are missing: add tokenizer.json (or vocab.json + merges.txt, or a "
            "sentencepiece tokenizer.model)"
        )
    return missing


def model_format(names: Collection[str], gguf_files: Collection[str]) -> ModelFormat:
    """The format of a complete model made of `names` (relative to its root), `gguf_files`
    those of them that are GGUF. IncompleteModel if it is neither one GGUF nor a whole
    Hugging Face folder."""
    if gguf_files:
        if len(gguf_files) > 1 or any(name.endswith(".safetensors") for name in names):
            raise IncompleteModel("Upload one .gguf file, or safetensors weights; not both.")
        return ModelFormat.GGUF
    missing = missing_parts(names)
    if missing:
        raise IncompleteModel("; ".join(missing) + ".")
    return ModelFormat.SAFETENSORS


def _json_object(path: Path) -> dict[str, Any]:
    document = check_json(path.name, path.read_bytes())
    if not isinstance(document, dict):
        raise ModelFileError(f"{path.name} must hold a JSON object, not {type(document).__name__}")
    return document


def _check_weights(model_dir: Path, names: Collection[str]) -> None:
    weights = sorted(name for name in names if name.endswith(".safetensors"))
    if not weights:
        pickles = sorted(name for name in names if name.lower().endswith(PICKLE_EXTENSIONS))
        if pickles:
            raise PickleRefused(
                f"only pickle weights were found ({', '.join(pickles[:3])}); they are never "
                f"loaded because unpickling can run code. Convert them to safetensors "
                f"({_SAVE_ADVICE}) and upload again"
            )
    if INDEX_FILE in names:
        weight_map = _json_object(model_dir / INDEX_FILE).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ModelFileError(f"{INDEX_FILE} has no weight_map")
        absent = sorted({str(shard) for shard in weight_map.values()} - set(weights))
        if absent:
            raise IncompleteModel(
                f"safetensors shards listed in {INDEX_FILE} are missing: {', '.join(absent[:5])}"
            )
    for name in weights:
        check_safetensors_file(model_dir / name)


def check_model_files(model_dir: Path) -> dict[str, Any]:
    """Check a Hugging Face model folder without transformers: config.json parses and asks for
    no custom code, the weights are whole safetensors, tokenizer files are there. Returns
    config.json."""
    if not model_dir.is_dir():
        raise ModelFileError(f"model folder {model_dir.name} was not found")
    names = {path.name for path in model_dir.iterdir() if path.is_file()}
    # The config first: whatever else is wrong, a config asking for custom code is the news.
    config = _json_object(model_dir / CONFIG_FILE) if CONFIG_FILE in names else {}
    _check_weights(model_dir, names)
    model_format(names, gguf_files=())
    for name in ("tokenizer_config.json", TOKENIZER_FILE):
        if name in names:
            _json_object(model_dir / name)
    return config


def check_model_dir(model_dir: Path) -> dict[str, Any]:
    """`check_model_files`, and transformers ships the model type with a text-generation head."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = check_model_files(model_dir)
    model_type = str(config["model_type"])
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
    return config


def estimate_parameter_bytes(model_dir: Path, itemsize: int) -> int:
    """Bytes a checked folder's weights take once loaded with `itemsize`-byte floats, from the
    safetensors headers (no tensor data is read). Falls back to the files' sizes."""
    from safetensors import SafetensorError, safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return sum(path.stat().st_size for path in model_dir.iterdir() if path.is_file())
    total = 0
    for path in files:
        try:
            file_total = 0
            with safe_open(path, framework="numpy") as handle:
                for tensor in handle.keys():  # noqa: SIM118 (safe_open is not iterable)
                    piece = handle.get_slice(tensor)
                    dtype = SAFETENSORS_DTYPES.get(piece.get_dtype())
                    size = itemsize if dtype is None or dtype.floating else dtype.size
                    file_total += math.prod(piece.get_shape()) * size
        except (OSError, SafetensorError):
            file_total = path.stat().st_size
        total += file_total
    return total
