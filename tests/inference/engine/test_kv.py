"""The padded KV batch: rows join (with and without re-layout) and leave in any order, and every
row's logits stay those of its sequence run alone."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from services.inference.engine.kv import PaddedBackend, SerialBackend, padded_batching_supported
from shared.model_loading import load_causal_lm
from tests.models_hub.tiny_models import build_tiny_gpt2, build_tiny_llama


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def tiny_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    build = build_tiny_llama if request.param == "llama" else build_tiny_gpt2
    model, _ = load_causal_lm(build(tmp_path_factory.mktemp(request.param)))
    return model


class Checked:
    """A backend and the token sequences its rows hold, checked against unbatched forwards."""

    def __init__(self, model: Any, backend: Any) -> None:
        self.model = model
        self.backend = backend
        self.rows: list[list[int]] = []

    def expected(self, tokens: list[int]) -> torch.Tensor:
        ids = torch.tensor([tokens])
        logits: torch.Tensor = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        return logits[0, -1]

    def check(self, logits: torch.Tensor, rows: list[list[int]]) -> None:
        assert logits.shape[0] == len(rows)
        for got, tokens in zip(logits, rows, strict=True):
            torch.testing.assert_close(got, self.expected(tokens), atol=2e-4, rtol=1e-4)

    def join(self, prompts: list[list[int]], keep: list[int]) -> None:
        chunk, logits = self.backend.prefill(prompts)
        self.check(logits, prompts)
        appended = self.backend.merge([chunk], [keep])
        assert sorted(row for _, row in appended) == sorted(keep)
        self.rows.extend(list(prompts[row]) for _, row in appended)

    def step(self, steps: int = 1) -> None:
        for _ in range(steps):
            tokens = [(len(row) * 7 + row[-1]) % 50 + 3 for row in self.rows]
            for row, token in zip(self.rows, tokens, strict=True):
                row.append(token)
            self.check(self.backend.decode(tokens), self.rows)

    def leave(self, rows: list[int]) -> None:
        order = self.backend.remove(rows)
        assert sorted(order) == sorted(set(range(len(self.rows))) - set(rows))
        self.rows = [self.rows[i] for i in order]


def _prompt(length: int, seed: int) -> list[int]:
    return [(seed * 31 + i * 17) % 200 + 3 for i in range(length)]


def test_rows_join_and_leave_without_changing_any_row(tiny_model: Any) -> None:
    assert padded_batching_supported(tiny_model)
    backend = PaddedBackend(tiny_model, headroom=4, pad_token_id=0, max_rows=16)
    checked = Checked(tiny_model, backend)
    with torch.inference_mode():
        # nothing running: the prefill becomes the batch, one of its rows already finished
        checked.join([_prompt(5, 1), _prompt(9, 2), _prompt(3, 3)], keep=[0, 2])
        checked.step(3)
        # shorter prompts fill free row slots; a longer one re-lays the batch out
        checked.join([_prompt(4, 4)], keep=[0])
        checked.join([_prompt(30, 5), _prompt(2, 6)], keep=[1, 0])
        checked.step(2)
        checked.leave([0, 2])  # the last row moves into a freed slot
        checked.step(6)  # positions run out: the buffers grow, all-padding columns dropped
        assert backend.reallocations >= 2
        for seed in range(7, 17):  # more rows than the row capacity
            checked.join([_prompt(3 + seed % 5, seed)], keep=[0])
        checked.step(2)
        assert backend._batch is not None
        assert backend._batch.row_capacity == 16
        checked.leave(list(range(1, len(checked.rows) - 1)))  # mostly empty: shrinks
        assert backend._batch.row_capacity == 8
        checked.step(2)
        assert len(checked.rows) == 2
        checked.leave([0, 1])
        assert backend.kv_bytes() == 0
        checked.join([_prompt(6, 20)], keep=[0])
        checked.step(2)


def test_serial_backend_rows(tiny_model: Any) -> None:
    checked = Checked(tiny_model, SerialBackend(tiny_model))
    with torch.inference_mode():
        checked.join([_prompt(5, 1), _prompt(9, 2)], keep=[1, 0])
        checked.step(2)
        checked.join([_prompt(3, 3)], keep=[0])
        checked.leave([1])
        checked.step(2)
        assert checked.backend.kv_bytes() > 0


def test_prefill_of_uneven_prompts_has_no_nan_in_padding(tiny_model: Any) -> None:
    backend = PaddedBackend(tiny_model, headroom=4, pad_token_id=0, max_rows=4)
    with torch.inference_mode():
        chunk, _ = backend.prefill([_prompt(1, 1), _prompt(12, 2)])
    for buffer in [*chunk.keys, *chunk.values]:
        assert torch.isfinite(buffer).all()
        assert (buffer[0, :, :11] == 0).all()
