"""The one model-file policy: what it accepts the `safetensors` library loads, what the library
refuses it refuses first (with a message naming the problem), streams and files alike."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from shared.model_files import (
    MAX_SAFETENSORS_HEADER,
    IncompleteModel,
    ModelFileError,
    ModelFormat,
    PickleRefused,
    SafetensorsCheck,
    check_safetensors_file,
    estimate_parameter_bytes,
    model_format,
    refuse_code_or_pickle,
)

GOOD = save(
    {
        "w": np.arange(12, dtype=np.float32).reshape(3, 4),
        "ids": np.arange(3, dtype=np.int64),
        "mask": np.ones(5, dtype=np.bool_),
    },
    metadata={"format": "pt"},
)


def _file(header: dict[str, object], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _f32(begin: int, end: int, count: int = 1) -> dict[str, object]:
    return {"dtype": "F32", "shape": [count], "data_offsets": [begin, end]}


def _stream(content: bytes) -> None:
    check = SafetensorsCheck("model.safetensors")
    for start in range(0, len(content), 7):
        check.feed(content[start : start + 7])
    check.finish(len(content))


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        pytest.param(GOOD[:-7], "is truncated", id="truncated"),
        pytest.param(GOOD + b"xx", "unexpected trailing bytes", id="trailing"),
        pytest.param(_file({"a": _f32(4, 8)}, b"\0" * 8), "does not start", id="gap"),
        pytest.param(
            _file({"a": _f32(0, 4), "b": _f32(0, 4)}, b"\0" * 4), "does not start", id="overlap"
        ),
        pytest.param(
            _file({"a": {"dtype": "X32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
            "needs a dtype",
            id="unknown dtype",
        ),
        pytest.param(_file({"a": _f32(0, 8)}, b"\0" * 8), "do not match its shape", id="size"),
        pytest.param(
            struct.pack("<Q", MAX_SAFETENSORS_HEADER + 1) + b"{" + b" " * 16,
            "past the format's limit",
            id="header too long",
        ),
        pytest.param(struct.pack("<Q", 1000) + b"{}", "is truncated", id="header past the end"),
        pytest.param(_file({"a": _f32(0, 4)}, b"\0" * 4)[:-5] + b"!" * 5, "corrupt", id="json"),
    ],
)
def test_what_the_library_refuses_is_refused_first(
    tmp_path: Path, content: bytes, phrase: str
) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(SafetensorError), safe_open(path, framework="numpy"):
        pass
    with pytest.raises(ModelFileError, match=phrase) as on_disk:
        check_safetensors_file(path)
    assert str(on_disk.value).startswith("safetensors file model.safetensors ")

    # The hub sees the same file as a stream of chunks, and answers the same.
    with pytest.raises(ModelFileError) as streamed:
        _stream(content)
    assert str(streamed.value) == str(on_disk.value)


def test_what_it_accepts_the_library_loads(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(GOOD)
    check_safetensors_file(path)
    with safe_open(path, framework="numpy") as handle:
        assert sorted(handle.keys()) == ["ids", "mask", "w"]


def test_the_parameter_estimate_counts_floats_in_the_serving_dtype(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(GOOD)
    # 12 floats at the serving itemsize; 3 int64 and 5 bools as stored.
    assert estimate_parameter_bytes(tmp_path, 2) == 12 * 2 + 3 * 8 + 5 * 1
    assert estimate_parameter_bytes(tmp_path, 4) == 12 * 4 + 3 * 8 + 5 * 1


def test_a_header_of_pickle_like_length_is_not_a_pickle() -> None:
    # 640 bytes is 0x0280: the file starts like a pickle's PROTO 2 opcode.
    padded = json.dumps({"__metadata__": {"pad": "x" * (640 - 30)}}).ljust(640).encode()
    head = struct.pack("<Q", len(padded)) + padded
    assert head[:2] == b"\x80\x02"
    refuse_code_or_pickle("model.safetensors", head)
    with pytest.raises(PickleRefused):
        refuse_code_or_pickle("model.safetensors", b"\x80\x04\x95" + b"\0" * 20)


def test_a_model_is_one_gguf_or_a_whole_folder() -> None:
    assert model_format(["m.gguf"], ["m.gguf"]) is ModelFormat.GGUF
    folder = ["config.json", "model.safetensors", "vocab.json", "merges.txt"]
    assert model_format(folder, []) is ModelFormat.SAFETENSORS
    assert model_format([*folder[:2], "spiece.model"], []) is ModelFormat.SAFETENSORS
    with pytest.raises(IncompleteModel, match="not both"):
        model_format(["m.gguf", "model.safetensors"], ["m.gguf"])
    with pytest.raises(IncompleteModel) as missing:
        model_format(["model.safetensors"], [])
    assert str(missing.value) == (
        "config.json is missing: add the config.json that save_pretrained writes next to the "
        "weights; tokenizer files are missing: add tokenizer.json (or vocab.json + merges.txt, "
        "or a sentencepiece tokenizer.model)."
    )
