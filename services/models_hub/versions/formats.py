"""Recognising uploaded files by their content.

What a model may be made of (safetensors weights or one GGUF, configs without custom code, no
pickles, no code) is the shared model-file policy, `shared.model_files`: the sandbox and the
inference engine apply the same. This module sniffs each uploaded file's kind from its first
bytes (archives and text files too, which only uploads have), and turns the policy's refusals
into the hub's 422 errors, their messages and codes unchanged. Nothing here ever deserialises
untrusted data beyond JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from shared.errors import UnprocessableEntity
from shared.model_files import (
    GGUF_MAGIC,
    SENTENCEPIECE_NAMES,
    ModelFileError,
    check_gguf_head,
    looks_like_safetensors,
    refuse_code_or_pickle,
)

SNIFF_BYTES = 512  # enough for every magic number below (tar's sits at offset 257)

TEXT_EXTENSIONS = (".txt", ".jinja", ".md", ".model.txt")
TEXT_NAMES = ("merges.txt", "vocab.txt", "chat_template.jinja", "readme.md", "license")


class FileKind(StrEnum):
    """What an uploaded file is (each stored file's `kind`)."""

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


class ModelFileRefused(UnprocessableEntity):
    """A refusal of the shared model-file policy; its code is the policy's."""

    code = "invalid_model_file"


@contextmanager
def policy_refusals() -> Iterator[None]:
    """Answer the model-file policy's refusals inside as 422s with their own codes."""
    try:
        yield
    except ModelFileError as exc:
        raise ModelFileRefused(str(exc), code=exc.code) from exc


def classify(name: str, head: bytes) -> FileKind:
    """What a file is, from its first bytes (and its name only where content cannot tell)."""
    lower = name.lower()
    refuse_code_or_pickle(name, head)
    if head.startswith(GGUF_MAGIC):
        return FileKind.GGUF
    if looks_like_safetensors(head):
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
        raise ModelFileError(f"{name} is not a valid safetensors file (bad header)")
    if lower.endswith(".gguf"):
        check_gguf_head(name, head)  # raises: it has no GGUF magic
    raise FileRefused(
        f"'{name}' is not a file type we accept. Upload config.json, *.safetensors, tokenizer "
        "files and an optional chat template, or one .gguf file, or an archive of a model folder."
    )
