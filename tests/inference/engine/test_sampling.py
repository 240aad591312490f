"""The vectorized sampler: each row of one batch keeps its own parameters."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from services.inference.engine.params import SamplingParams
from services.inference.engine.sampling import sample


@dataclass
class Row:
    params: SamplingParams
    generator: torch.Generator | None = None
    presence: torch.Tensor | None = None


def _row(seed: int = 0, **kwargs: object) -> Row:
    generator = torch.Generator().manual_seed(seed)
    return Row(SamplingParams(**kwargs), generator)  # type: ignore[arg-type]


def _logits(rows: int, vocab: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def test_greedy_and_top_k_1_are_argmax() -> None:
    logits = _logits(4)
    rows = [
        Row(SamplingParams(temperature=0)),
        _row(top_k=1, temperature=1.7),
        _row(top_k=1, temperature=0.2, top_p=0.5),
        Row(SamplingParams(temperature=0, top_k=5)),
    ]
    assert sample(logits.clone(), rows) == logits.argmax(-1).tolist()


def test_top_k_and_top_p_restrict_the_choice() -> None:
    logits = _logits(1, vocab=100).repeat(6, 1)
    top5 = set(logits[0].topk(5).indices.tolist())
    probs = torch.softmax(logits[0], -1)
    ordered = probs.argsort(descending=True)
    mass = probs[ordered].cumsum(0)
    nucleus = set(ordered[: int((mass < 0.9).sum()) + 1].tolist())
    seen_k: set[int] = set()
    seen_p: set[int] = set()
    for seed in range(200):
        rows = [
            _row(seed, top_k=5),
            _row(seed + 1000, top_p=0.9),
            _row(seed + 2000, top_k=5, top_p=0.9),
            _row(seed + 3000),
            Row(SamplingParams(temperature=0)),
            _row(seed + 4000, temperature=0.5, top_k=3),
        ]
        tokens = sample(logits.clone(), rows)
        seen_k.add(tokens[0])
        seen_p.add(tokens[1])
        assert tokens[2] in top5
        assert tokens[2] in nucleus
        assert tokens[4] == int(logits[0].argmax())
        assert tokens[5] in set(logits[0].topk(3).indices.tolist())
    assert seen_k <= top5
    assert len(seen_k) > 1
    assert seen_p <= nucleus
    assert len(seen_p) > 1


def test_top_k_only_rows_use_the_same_rule() -> None:
    # All rows filtered by top_k takes the topk path; results stay within each row's k.
    logits = _logits(2, vocab=80)
    for seed in range(50):
        tokens = sample(logits.clone(), [_row(seed, top_k=2), _row(seed, top_k=7)])
        assert tokens[0] in set(logits[0].topk(2).indices.tolist())
        assert tokens[1] in set(logits[1].topk(7).indices.tolist())


def test_temperature_sampling_follows_the_distribution() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    generator = torch.Generator().manual_seed(7)
    counts = [0, 0, 0]
    for _ in range(3000):
        row = Row(SamplingParams(temperature=1.0), generator)
        counts[sample(logits.clone(), [row])[0]] += 1
    expected = torch.softmax(logits[0], -1).tolist()
    for count, p in zip(counts, expected, strict=True):
        assert abs(count / 3000 - p) < 0.04


def test_seeded_rows_are_reproducible_and_independent_of_the_batch() -> None:
    logits = _logits(3, vocab=64)

    def run(seeds: list[int]) -> list[list[int]]:
        rows = [_row(seed, temperature=1.0) for seed in seeds]
        return [sample(logits[: len(seeds)].clone(), rows) for _ in range(20)]

    first, again = run([1, 2, 3]), run([1, 2, 3])
    assert first == again
    alone = run([1])
    assert [step[0] for step in first] == [step[0] for step in alone]
    other = run([5, 2, 3])
    assert [step[0] for step in first] != [step[0] for step in other]


def test_repetition_penalty_matches_transformers() -> None:
    logits = _logits(2, vocab=40)
    seen = [3, 7, 7, 11, int(logits[0].argmax())]
    presence = torch.zeros(40, dtype=torch.bool)
    presence[seen] = True
    rows = [Row(SamplingParams(temperature=0, repetition_penalty=1.5), presence=presence)]
    expected = RepetitionPenaltyLogitsProcessor(1.5)(torch.tensor([seen]), logits[:1].clone())
    assert sample(logits[:1].clone(), rows) == expected.argmax(-1).tolist()
    # a penalty on one row leaves the other alone
    rows.append(Row(SamplingParams(temperature=0)))
    assert sample(logits.clone(), rows)[1] == int(logits[1].argmax())
