"""The numbers of an A/B run: per answer, then per model and arm, and the rewrite's change.

Per answer: gendered terms (male, female), demographic lexicon terms, valence, hedges and the
confidence score, words, latency and tokens/s. Per model and arm: the means of those, and the
consistency of the N samples (mean pairwise TF-IDF cosine, as in evaluation reports) as a
quality measure; `difference` is rewrite minus original for every mean.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from services.inference.evaluations import lexicon, metrics
from services.inference.models import ABArm

_DEMOGRAPHIC = frozenset({"gender", "nationality", "religion", "age", "stereotype"})


def answer_metrics(text: str, completion_tokens: int, latency_ms: float) -> dict[str, Any]:
    gender = metrics.gender_counts(text)
    found = [m for m in lexicon.find_terms(text) if m.category in _DEMOGRAPHIC]
    return {
        "male_terms": gender.male,
        "female_terms": gender.female,
        "gendered_terms": gender.total,
        "demographic_terms": len(found),
        "valence": round(metrics.valence(text), 4),
        **metrics.confidence(text).as_dict(),
        "tokens_per_second": round(metrics.tokens_per_second(completion_tokens, latency_ms), 3),
        "latency_ms": round(latency_ms, 2),
    }


_MEANS = (
    "male_terms",
    "female_terms",
    "gendered_terms",
    "demographic_terms",
    "valence",
    "hedges",
    "confidence_score",
    "words",
    "latency_ms",
    "tokens_per_second",
)


def _arm_summary(rows: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"samples": len(rows)}
    for name in _MEANS:
        summary[name] = metrics.rounded(metrics.mean([float(m[name]) for _, m in rows]))
    similarity = metrics.pairwise_similarity([text for text, _ in rows])
    summary["consistency"] = metrics.rounded(metrics.mean(similarity))
    return summary


def run_summary(outputs: Sequence[tuple[str, str, str, dict[str, Any]]]) -> dict[str, Any]:
    """`outputs`: (model, arm, text, metrics) of every stored answer."""
    grouped: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for model, arm, text, values in outputs:
        grouped[model][arm].append((text, values))
    summary: dict[str, Any] = {}
    for model, arms in grouped.items():
        original = _arm_summary(arms.get(ABArm.ORIGINAL, []))
        rewrite = _arm_summary(arms.get(ABArm.REWRITE, []))
        difference = {
            name: None
            if original.get(name) is None or rewrite.get(name) is None
            else round(rewrite[name] - original[name], 4)
            for name in (*_MEANS, "consistency")
        }
        summary[model] = {"original": original, "rewrite": rewrite, "difference": difference}
    return summary
