"""Recognising uploaded files by their content, and the acceptance policy.

Weights must be safetensors (checked here in plain Python: header length, JSON header,
dtypes, offsets, file size) or GGUF (magic and version). Pickle-based checkpoints and code are
refused with a message that says what to do instead; so is any file we cannot recognise.
Nothing here ever deserialises untrusted data beyond JSON.
"""

from __future__ import annotations

import json
import math
import struct
from enum import StrEnum
from typing import Any

from shared.errors import UnprocessableEntity

SNIFF_BYTES = 512  # enough for every magic number below (tar's sits at offset 257)
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the format's own limit

PICKLE_EXTENSIONS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz")
CODE_EXTENSIONS = (".py", ".pyc", ".pyo", ".so", ".dll", ".dylib", ".sh", ".exe", ".ipynb")
TEXT_EXTENSIONS = (".txt", ".jinja", ".md", ".model.txt")
TEXT_NAMES = ("merges.txt", "vocab.txt", "chat_template.jinja", "readme.md", "license")
SENTENCEPIECE_NAMES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
SAFETENSORS_DTYPES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


class FileKind(StrEnum):
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    JSON = "json"
    TEXT = "text"
    SENTENCEPIECE = "sentencepiece"
    TAR = "tar"
    GZIP = "gzip"
    ZIP = "zip"


ARCHIVES = (FileKind.TAR, FileKind.GZIP, FileKind.ZIP)


class FileRefused(UnprocessableEntity):
    code = "file_refused"


class PickleRefused(FileRefused):
    code = "pickle_refused"


class CodeRefused(FileRefused):
    code = "code_refused"


class InvalidModelFile(UnprocessableEntity):
    code = "invalid_model_file"


def _pickle_refusal(name: str) -> PickleRefused:
    return PickleRefused(
        f"'{name}' is a pickle-based checkpoint, which can run code when loaded. Convert it to "
        "safetensors (e.g. model.save_pretrained(dir, safe_serialization=True)) and upload that."
    )


def classify(name: str, head: bytes) -> FileKind:
    """What a file is, from its first bytes (and its name only where content cannot tell)."""
    lower = name.lower()
    if lower.endswith(CODE_EXTENSIONS):
        raise CodeRefused(
            f"'{name}' is code. Models with custom code are not accepted: use an architecture "
            "transformers ships, without auto_map."
        )
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        raise _pickle_refusal(name)
    if lower.endswith(PICKLE_EXTENSIONS):
        raise _pickle_refusal(name)
    if head.startswith(b"GGUF"):
        return FileKind.GGUF
    if _looks_like_safetensors(head):
        if not lower.endswith(".safetensors"):
            raise FileRefused(f"'{name}' holds safetensors weights; name it *.safetensors.")
        return FileKind.SAFETENSORS
    if head.startswith(b"\x1f\x8b"):
        return FileKind.GZIP
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return FileKind.ZIP
    if len(head) >= 262 and head[257:262] == b"ustar":
        return FileKind.TAR
    if lower.endswith(".json") and head.lstrip()[:1] in (b"{", b"["):
        return FileKind.JSON
    if lower.endswith(SENTENCEPIECE_NAMES):
        return FileKind.SENTENCEPIECE
    if lower.endswith(TEXT_EXTENSIONS) or lower in TEXT_NAMES:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character may straddle the sniffed prefix; tolerate only that.
            if exc.start < len(head) - 4:
                raise FileRefused(f"'{name}' should be UTF-8 text but is not.") from exc
        return FileKind.TEXT
    if lower.endswith(".safetensors"):
        raise InvalidModelFile(f"'{name}' is not a valid safetensors file (bad header).")
    if lower.endswith(".gguf"):
        raise InvalidModelFile(f"'{name}' is not a GGUF file (no GGUF magic).")
    raise FileRefused(
        f"'{name}' is not a file type we accept. Upload config.json, *.safetensors, tokenizer "
        "files and an optional chat template, or one .gguf file, or an archive of a model folder."
    )


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 2 <= header_len <= MAX_SAFETENSORS_HEADER and head[8:9] == b"{"


class SafetensorsCheck:
    """Checks a safetensors file as it streams past, keeping only its header in memory."""

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
                raise InvalidModelFile(f"'{self.name}' has an oversized safetensors header.")
        if self._header_len is not None and len(self._buffer) >= 8 + self._header_len:
            self.data_size = self._parse(bytes(self._buffer[8 : 8 + self._header_len]))
            self._buffer = bytearray()

    def _parse(self, raw: bytes) -> int:
        try:
            header: dict[str, Any] = json.loads(raw)
        except ValueError as exc:
            raise InvalidModelFile(
                f"'{self.name}' has a corrupt safetensors header: {exc}."
            ) from exc
        if not isinstance(header, dict):
            raise InvalidModelFile(f"'{self.name}' has a corrupt safetensors header.")
        end = 0
        for tensor, info in header.items():
            if tensor == "__metadata__":
                continue
            try:
                dtype, shape, (begin, stop) = info["dtype"], info["shape"], info["data_offsets"]
                expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidModelFile(
                    f"'{self.name}': tensor '{tensor}' has an invalid entry in the header."
                ) from exc
            if not (0 <= begin <= stop) or stop - begin != expected:
                raise InvalidModelFile(
                    f"'{self.name}': tensor '{tensor}' has offsets that do not match its shape."
                )
            end = max(end, stop)
        return end

    def finish(self, total_size: int) -> None:
        if self.data_size is None:
            raise InvalidModelFile(f"'{self.name}' is truncated: its header is incomplete.")
        expected = 8 + (self._header_len or 0) + self.data_size
        if total_size < expected:
            raise InvalidModelFile(
                f"'{self.name}' is truncated: {total_size} bytes of the {expected} its header "
                "describes. Upload it again."
            )
        if total_size > expected:
            raise InvalidModelFile(
                f"'{self.name}' has {total_size - expected} unexpected trailing bytes."
            )


def check_gguf_head(name: str, head: bytes) -> None:
    if len(head) < 8:
        raise InvalidModelFile(f"'{name}' is too short to be a GGUF file.")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (2, 3):
        raise InvalidModelFile(
            f"'{name}' is GGUF version {version}; versions 2 and 3 are supported."
        )


def check_json_file(name: str, raw: bytes) -> None:
    """JSON must parse; configs must not ask for custom code."""
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise InvalidModelFile(f"'{name}' is not valid JSON: {exc}.") from exc
    base = name.rsplit("/", 1)[-1].lower()
    if isinstance(document, dict) and "auto_map" in document:
        raise CodeRefused(
            f"'{name}' declares auto_map (custom model code). trust_remote_code is never used "
            "here: remove auto_map and use an architecture transformers ships."
        )
    if base == "config.json" and not (isinstance(document, dict) and document.get("model_type")):
        raise InvalidModelFile("config.json has no model_type; it is not a transformers config.")
