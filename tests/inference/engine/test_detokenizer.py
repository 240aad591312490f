"""Incremental detokenization, stop sequences and EOS, on the tiny byte-level BPE tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.inference.engine import InvalidSamplingParams, SamplingParams
from services.inference.engine.detokenizer import (
    IncrementalDetokenizer,
    OutputText,
    StopMatcher,
    make_decoder,
)
from tests.models_hub.tiny_models import build_tokenizer

MIXED = "héllo wörld 漢字 🙂"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_tokenizer(Path(tmp_path_factory.mktemp("tokenizer")))


def _stream(tokenizer: Any, ids: list[int], prompt: list[int] | None = None) -> list[str]:
    detok = IncrementalDetokenizer(make_decoder(tokenizer), prompt or [])
    deltas = [detok.add(token) for token in ids]
    deltas.append(detok.flush())
    return deltas


def test_multibyte_characters_stream_whole(tokenizer: Any) -> None:
    ids = tokenizer(MIXED)["input_ids"]
    # The test means something: some tokens are bytes of a character, not a character.
    assert any("\ufffd" in tokenizer.decode([token]) for token in ids)
    deltas = _stream(tokenizer, ids)
    assert all("\ufffd" not in delta for delta in deltas)
    assert "".join(deltas) == tokenizer.decode(ids) == MIXED
    # Each character arrives exactly once and as soon as its last byte is there.
    assert [d for d in deltas if d][:2] == ["h", "é"]
    assert deltas[-1] == ""


def test_deltas_after_a_prompt_equal_the_full_decode(tokenizer: Any) -> None:
    prompt = tokenizer("Grüße aus München: ")["input_ids"]
    ids = tokenizer("日本語のテキスト, 你好世界 ✨ and Привет")["input_ids"]
    deltas = _stream(tokenizer, ids, prompt)
    assert all("\ufffd" not in delta for delta in deltas)
    assert "".join(deltas) == tokenizer.decode(ids)


def test_special_tokens_are_not_text(tokenizer: Any) -> None:
    eos = tokenizer.convert_tokens_to_ids("</s>")
    ids = [*tokenizer("Hello")["input_ids"], eos, *tokenizer(" world")["input_ids"]]
    assert "".join(_stream(tokenizer, ids)) == "Hello world"


def test_incomplete_bytes_at_the_end_are_flushed(tokenizer: Any) -> None:
    ids = tokenizer("a 🙂")["input_ids"][:-1]  # cut inside the emoji
    detok = IncrementalDetokenizer(make_decoder(tokenizer))
    text = "".join(detok.add(token) for token in ids)
    assert "\ufffd" not in text
    assert (text + detok.flush()).endswith("\ufffd")


def test_slow_decoder_path(tokenizer: Any) -> None:
    class Slow:
        def decode(self, ids: list[int], **kwargs: Any) -> str:
            return str(tokenizer.decode(ids, **kwargs))

    ids = tokenizer(MIXED)["input_ids"]
    detok = IncrementalDetokenizer(make_decoder(Slow()))
    assert "".join(detok.add(token) for token in ids) + detok.flush() == MIXED


# ---- stop sequences -----------------------------------------------------------------------------


def test_stop_matcher_holds_back_possible_starts() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("abc S") == ("abc ", False)
    assert matcher.feed("T") == ("", False)
    assert matcher.feed("x") == ("STx", False)  # not a stop after all: released
    assert matcher.feed("yST") == ("y", False)
    assert matcher.feed("OP and more") == ("", True)


def test_stop_matcher_spanning_many_deltas_emits_only_text_before() -> None:
    matcher = StopMatcher(["\n\nUser:", "###"])
    out = []
    for delta in ["Hi", " there", "\n", "\nUs", "er", ":", " next"]:
        text, stopped = matcher.feed(delta)
        out.append(text)
        if stopped:
            break
    assert stopped
    assert "".join(out) == "Hi there"


def test_stop_matcher_first_stop_wins_and_flush() -> None:
    matcher = StopMatcher(["bb", "ab"])
    assert matcher.feed("xxab bb") == ("xx", True)
    matcher = StopMatcher(["zz"])
    assert matcher.feed("abz") == ("ab", False)
    assert matcher.flush() == "z"


def test_output_text_stop_over_multibyte_tokens(tokenizer: Any) -> None:
    ids = tokenizer(MIXED)["input_ids"]
    output = OutputText(make_decoder(tokenizer), [], stop=["漢字"])
    text = ""
    for token in ids:
        delta, stopped = output.add(token)
        text += delta
        if stopped:
            break
    assert stopped
    assert text == "héllo wörld "


def test_output_text_eos_stops_without_text(tokenizer: Any) -> None:
    eos = tokenizer.convert_tokens_to_ids("</s>")
    output = OutputText(make_decoder(tokenizer), [], stop=["lo!"], eos_token_ids={eos})
    assert output.add(tokenizer.convert_tokens_to_ids("l")) == ("", False)  # could start "lo!"
    assert output.add(eos) == ("l", True)  # released with the EOS, which adds no text
    ignoring = OutputText(make_decoder(tokenizer), [], eos_token_ids={eos}, ignore_eos=True)
    assert ignoring.add(eos) == ("", False)


def test_output_text_finish_releases_held_back_text(tokenizer: Any) -> None:
    ids = tokenizer("a 🙂 zz")["input_ids"]
    output = OutputText(make_decoder(tokenizer), [], stop=["zzz"])
    text = "".join(output.add(token)[0] for token in ids)
    rest, stopped = output.finish()
    assert not stopped
    assert text + rest == "a 🙂 zz"


# ---- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -1.0},
        {"temperature": float("nan")},
        {"top_k": -1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"max_tokens": 0},
        {"stop": ("",)},
        {"seed": -3},
        {"repetition_penalty": 0.0},
    ],
)
def test_invalid_sampling_params(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidSamplingParams):
        SamplingParams(**kwargs)


def test_sampling_params_normalise_stop() -> None:
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")  # type: ignore[arg-type]
    assert SamplingParams(stop="x").stop == ("x",)  # type: ignore[arg-type]
    assert SamplingParams(temperature=0).greedy
